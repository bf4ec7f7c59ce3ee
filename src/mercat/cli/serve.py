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
) -> None:
    """Serve the ledger, the content store, clearing and the privacy check over HTTP."""
    import uvicorn

    from mercat.node.app import create_app

    url = ledger or os.environ.get("MERCAT_LEDGER_URL")
    root = store or (Path(os.environ["MERCAT_STORE"]) if os.environ.get("MERCAT_STORE") else None)
    if ipfs_api is not None:
        from mercat.errors import InvalidParameterError
        from mercat.storage.kubo import KuboStore

        if store is not None:
            raise InvalidParameterError("give --store or --ipfs-api, not both")
        root = KuboStore(ipfs_api)
    node = create_app(url, root)  # a bad ledger URL or store path fails here, before listening
    uvicorn.run(node, host=host, port=port, log_level="info")
