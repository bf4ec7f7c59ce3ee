"""`mercat serve`: run a marketplace node's HTTP API (FastAPI on uvicorn), and with the
operator's key, the market's round loop beside it."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import (
    ledger_option,
    mechanism_option,
    mechanism_settings_option,
    seed_option,
)
from mercat.cli.clearing import mechanism_options

app = MercatTyper()


@app.command(renamed={"-o": "-O"})
def serve(
    ledger: str | None = ledger_option(
        help="Ledger store URL to serve (default: $MERCAT_LEDGER_URL; none: no ledger)."
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
    board: str | None = typer.Option(
        None,
        help="Where the live market's task board (claims, reports, round history, events) "
        "lives: a SQLite file's path, or a database URL (sqlite:///board.db, "
        "postgresql+psycopg://user@host/board: a database of its own, not the ledger's); "
        "default: in memory. A node that runs the round loop should keep one, so that a "
        "restart resumes where it stopped.",
    ),
    operator_key: Path | None = typer.Option(
        None,
        help="The ledger operator's key file, or - to read it from standard input: the node "
        "then runs the market's round loop (docs/devnet.md).",
    ),
    mechanism: str = mechanism_option(
        "optimal", help="The round loop's clearing mechanism", references=False
    ),
    option: list[str] = mechanism_settings_option(),
    round_seconds: float = typer.Option(
        5.0, min=0.0, help="The least time from one round's start to the next's."
    ),
    until_round: int | None = typer.Option(
        None, min=1, help="Open no round after this one (settlement goes on)."
    ),
    grace_ms: int = typer.Option(
        2000, min=0, max=3_600_000, help="Claims count until the SLA deadline plus this."
    ),
    attest_seconds: float = typer.Option(
        30.0, min=0.0, max=3600.0, help="How long a round waits for its oracles' quorum."
    ),
    admission: bool = typer.Option(
        True, help="Stake-weighted admission where the ledger's rule weighs by stake."
    ),
    seed: int = seed_option(0, help="Round r draws from default_rng([seed, r])."),
    auctioneer_peers: Path | None = typer.Option(
        None,
        help="Clear with seed 003's auctioneer run by the `mercat provider` processes of "
        "this peers file (opening = 'sealed'), instead of --mechanism (docs/devnet.md).",
    ),
    auctioneer_key: Path | None = typer.Option(
        None,
        help="With --auctioneer-peers: the node's client key file (one of the peers file's "
        "sealing_clients), or - for the line of standard input after the operator key.",
    ),
) -> None:
    """Serve the ledger, the content store, the live market, clearing and the privacy check
    over HTTP; with --operator-key, run the market's rounds too."""
    import uvicorn

    from mercat.clearing import registry
    from mercat.node.app import create_app
    from mercat.node.limits import NodeLimits
    from mercat.node.round_loop import LoopSettings
    from mercat.node.sla import Timing

    limits = NodeLimits.from_settings(limit)
    url = ledger or os.environ.get("MERCAT_LEDGER_URL")
    root = store or (Path(os.environ["MERCAT_STORE"]) if os.environ.get("MERCAT_STORE") else None)
    if ipfs_api is not None:
        from mercat.errors import InvalidParameterError
        from mercat.storage.kubo import KuboStore

        if store is not None:
            raise InvalidParameterError("give --store or --ipfs-api, not both")
        root = KuboStore(ipfs_api)
    operator = settings = None
    if operator_key is not None:
        from mercat.cli._keys import read_key

        operator = read_key(operator_key, "--operator-key")
        options = mechanism_options(registry.get(mechanism), list(option))
        client = None
        if (auctioneer_peers is None) != (auctioneer_key is None):
            from mercat.errors import InvalidParameterError

            raise InvalidParameterError("give --auctioneer-peers and --auctioneer-key together")
        if auctioneer_key is not None and auctioneer_peers is not None:
            from mercat.auctioneer.remote import peers_for_node

            client = read_key(auctioneer_key, "--auctioneer-key")
            peers_for_node(auctioneer_peers, client)  # a bad one fails here, before listening
        settings = LoopSettings(
            mechanism=mechanism, options=options, round_seconds=round_seconds,
            until_round=until_round, timing=Timing(grace_ms=grace_ms),
            attest_seconds=attest_seconds, admission=admission, seed=seed,
            auctioneer_peers=None if auctioneer_peers is None else str(auctioneer_peers),
            auctioneer_key=client,
        )  # fmt: skip
    # A bad ledger URL, store path, limit or operator key fails here, before listening.
    node = create_app(url, root, limits=limits, board=board, operator=operator, market=settings)
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
