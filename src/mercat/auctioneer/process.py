"""The provider as an OS process: `mercat provider --id J --peers peers.toml [--k K]`.

Reads the peers file and its key (a key file, or `--key -`: one line on standard input, so
that a launcher can hand it over without writing it to disk), binds its ZeroMQ address,
prints one line
`READY <id> <address>` on stdout when it listens (launchers wait for it), logs to stderr,
and serves rounds until SIGTERM or SIGINT. `python -m mercat.auctioneer.process` runs the
same without the console script.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from mercat.auctioneer.config import load_peers
from mercat.auctioneer.node import ProviderNode
from mercat.errors import AuctioneerConfigError, InvalidParameterError, MalformedMessageError
from mercat.identity import Keypair

KEY_FROM_STDIN = Path("-")
MAX_KEY_LINE = 256  # the 64 hex digits, and room for spaces: no more is read from stdin

#: Seconds a provider asked to stop waits for a computation in flight before it exits anyway.
STOP_GRACE_SECONDS = 1.0


def load_key(path: Path) -> Keypair:
    """A key file holds the 32-byte Ed25519 seed as 64 hex digits; `-` reads them from one
    line of standard input."""
    if Path(path) == KEY_FROM_STDIN:
        line = sys.stdin.readline(MAX_KEY_LINE)
        try:
            return Keypair.from_hex(line)
        except MalformedMessageError:
            raise AuctioneerConfigError(
                "--key -: standard input must hold one line of 64 hex digits (the seed)"
            ) from None
    try:
        return Keypair.from_file(path)
    except InvalidParameterError as exc:
        raise AuctioneerConfigError(str(exc)) from None


def default_key_path(peers_path: Path, provider: str) -> Path:
    return Path(peers_path).parent / f"{provider}.key"


def run_provider(
    peers_path: Path,
    provider: str,
    *,
    key_path: Path | None = None,
    k: int | None = None,
    bind: str | None = None,
    log_level: str = "WARNING",
    results: str | None = None,
    results_keep: int | None = None,
) -> None:
    """Serve as provider `provider` until SIGTERM/SIGINT. Raises AuctioneerConfigError on a
    bad peers file, a missing key or a key that is not the one the peers file lists.

    `results`: the result log's URL (default `<peers folder>/<id>.results.db`; "none": no
    log, finished rounds are then remembered in memory only); `results_keep`: at most that
    many rounds in it (None: all)."""
    from mercat.auctioneer.result_log import ResultLog, default_log_url
    from mercat.auctioneer.zmq_transport import ZmqTransport

    peers = load_peers(peers_path, k=k)
    me = peers.peer(provider)
    key = load_key(key_path or default_key_path(peers_path, provider))
    if key.public != me.public_key:
        raise AuctioneerConfigError(
            f"the key of {provider} does not match its public key in {peers_path}"
        )
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {provider} %(levelname)s %(name)s: %(message)s",
    )
    if results is None:
        results = default_log_url(peers_path, provider)
    result_log = None if results == "none" else ResultLog(results, keep=results_keep)
    transport = ZmqTransport(
        {p.id: p.address for p in peers.peers if p.id != provider},
        bind=bind or me.address,
        max_bytes=peers.params.max_message_bytes,
    )
    node = ProviderNode(
        provider,
        peers.params,
        key,
        peers.keys(),
        transport,
        sealing_clients=peers.sealing_clients,
        bidder_keys=peers.bidder_keys(),
        offload_compute=True,
        result_log=result_log,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            node.stop()
            # A round's computation runs in a worker thread that cannot be interrupted, and
            # asyncio.run would wait for it at shutdown: a provider asked to stop (by its
            # launcher, or by the death signal when the launcher dies) must not outlive that
            # request by a whole VCG solve. Exit hard after a short grace period.
            loop.call_later(STOP_GRACE_SECONDS, os._exit, 0)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        print(f"READY {provider} {bind or me.address}", flush=True)
        try:
            await node.serve()
        finally:
            await transport.aclose()
            if result_log is not None:
                result_log.close()

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one provider of the distributed auctioneer.")
    parser.add_argument("--id", required=True)
    parser.add_argument("--peers", required=True, type=Path)
    parser.add_argument("--key", type=Path, help="key file, or - to read it from stdin")
    parser.add_argument("--k", type=int)
    parser.add_argument("--bind")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--results", help="result log URL (default: beside the peers file)")
    parser.add_argument("--results-keep", type=int, help="keep only this many rounds in it")
    args = parser.parse_args(argv)
    try:
        run_provider(
            args.peers,
            args.id,
            key_path=args.key,
            k=args.k,
            bind=args.bind,
            log_level=args.log_level,
            results=args.results,
            results_keep=args.results_keep,
        )
    except AuctioneerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
