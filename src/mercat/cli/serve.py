"""`mercat serve`: run a marketplace node's HTTP API (FastAPI on uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer()


@app.command()
def serve(
    ledger: str | None = typer.Option(
        None, help="Ledger store URL to serve (default: $MERCAT_LEDGER_URL; none: no ledger)."
    ),
    store: Path | None = typer.Option(
        None, help="Content store directory to serve (default: $MERCAT_STORE; none: no store)."
    ),
    ipfs_api: str | None = typer.Option(
        None,
        help="Serve content kept in the IPFS daemon whose RPC API listens here "
        "(e.g. http://127.0.0.1:5001) instead of a store directory.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    limit: list[str] = typer.Option(
        [],
        "--limit",
        "-l",
        help="KEY=VALUE: one of the node's limits (docs/service.md, 'What protects the "
        "node'), e.g. --limit workers=4 --limit store_quota_bytes=50GB. Repeat for each.",
    ),
) -> None:
    """Serve the ledger, the content store, clearing and the privacy check over HTTP."""
    import uvicorn

    from mercat.node.app import create_app
    from mercat.node.limits import NodeLimits

    limits = NodeLimits.from_settings(limit)
    url = ledger or os.environ.get("MERCAT_LEDGER_URL")
    root = store or (Path(os.environ["MERCAT_STORE"]) if os.environ.get("MERCAT_STORE") else None)
    if ipfs_api is not None:
        from mercat.errors import InvalidParameterError
        from mercat.storage.kubo import KuboStore

        if store is not None:
            raise InvalidParameterError("give --store or --ipfs-api, not both")
        root = KuboStore(ipfs_api)
    # A bad ledger URL, store path or limit fails here, before listening.
    node = create_app(url, root, limits=limits)
    uvicorn.run(
        node,
        host=host,
        port=port,
        log_level="info",
        limit_concurrency=limits.max_connections,  # connections and tasks; above: 503
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


# On SIGTERM, requests in flight get this long to finish; then the node stops anyway (its
# worker processes, a solve included, are killed with it).
GRACEFUL_SHUTDOWN_SECONDS = 5
