"""`mercat oracle`: an oracle service process (docs/devnet.md): checks each task's SLA and
outputs (re-executing a sampled share), signs its reports and sends them to the node, until
SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import key_option, node_option
from mercat.cli._output import print_json

app = MercatTyper()


@app.command("oracle")
def oracle(
    node: str = node_option(),
    key: Path = key_option(..., help="The oracle's key file, or - to read it from stdin."),
    behaviour: Literal["honest", "liar", "silent"] = typer.Option(
        "honest", help="honest, liar (reports the opposite) or silent (never reports)."
    ),
    sample_rate: float = typer.Option(
        0.25, min=0.0, max=1.0, help="Share of tasks re-executed to check their output."
    ),
    sample_secret: Path | None = typer.Option(
        None,
        help="File with the secret (hex) the market's oracles share to pick the same sampled "
        "tasks, or - for the line of stdin after the key; without it, a secret of its own.",
    ),
    poll: float = typer.Option(0.25, min=0.01, max=60.0, help="Seconds between passes."),
    task_seconds: float = typer.Option(60.0, min=0.1, help="A re-execution's time limit."),
    task_memory: str = typer.Option("1GiB", help="A re-execution's memory limit."),
    workdir: Path | None = typer.Option(None, help="Where re-executions run."),
    wait_for_node: float = typer.Option(
        60.0, min=0.0, max=3600.0, help="Seconds to wait for the node to answer at start."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what it did as JSON at exit."),
) -> None:
    """Run an oracle until SIGTERM or Ctrl-C."""
    from mercat import validation as check
    from mercat.cli._keys import read_key, read_secret
    from mercat.cli._service import ready, run_until_stopped
    from mercat.cli.storage import parse_size
    from mercat.node.client import NodeClient, wait_until_up
    from mercat.node.oracle_service import BEHAVIOURS, OracleService
    from mercat.workloads import sandbox

    check.choice("--behaviour", behaviour, BEHAVIOURS)
    own = read_key(key)
    secret = read_secret(sample_secret)
    client = NodeClient(node)
    wait_until_up(node, wait_for_node)
    info = client.market_info()
    if own.public not in info["oracles"]:
        from mercat.errors import UnknownOracleError

        raise UnknownOracleError(f"{own.public[:16]}… is not in this ledger's oracle set")
    limits = sandbox.Limits(seconds=task_seconds, memory_bytes=parse_size(task_memory))
    service = OracleService(client, own, behaviour=behaviour, sample_rate=sample_rate,  # type: ignore[arg-type]
                            secret=secret, limits=limits, poll_seconds=poll,
                            workdir=None if workdir is None else str(workdir))  # fmt: skip
    ready(f"READY {own.public} {behaviour}")
    stats = run_until_stopped(service.run)
    if as_json:
        print_json({"oracle": own.public, "behaviour": behaviour, **vars(stats)})
