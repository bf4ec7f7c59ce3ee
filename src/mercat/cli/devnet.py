"""`mercat devnet up`: a whole market of processes on loopback (docs/devnet.md): a node with
its round loop, provider agents (some failure-prone), oracles (some lying or silent, if
asked), requesters; R rounds, then the ledger's audit and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import json_option, mechanism_option, seed_option
from mercat.cli._output import console, print_json, print_table

app = MercatTyper(help="Run a local market of processes: node, agents, oracles, requesters.")


@app.command("up")
def up(
    providers: int = typer.Option(4, min=1, max=200, help="Provider agents (processes)."),
    servers: int = typer.Option(2, min=1, max=16, help="Servers per provider."),
    oracles: int = typer.Option(3, min=1, max=31, help="Oracles; the quorum is a majority."),
    requesters: int = typer.Option(5, min=1, max=200, help="Requesters (processes)."),
    rounds: int = typer.Option(5, min=1, max=100_000, help="Rounds to run."),
    per_round: int = typer.Option(2, min=1, max=100, help="Requests per requester per round."),
    failure_prone: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Share of providers whose servers fail often."
    ),
    failure_rate: float = typer.Option(0.3, min=0.0, max=1.0, help="Their F_a."),
    mechanism: str = mechanism_option(
        "optimal",
        references=False,
        more="double-auction and distributed-auction (seed 003's) clear per-unit asks and one "
        "replica per request.",
    ),
    collective: Literal["free", "coll-stake", "coll-rep", "coll-sr"] = typer.Option(
        "coll-sr", help="Collective rule the devnet's ledger enforces (seed 000's four)."
    ),
    stake: float = typer.Option(4.0, min=0.0, help="S0: each asset's stake (tokens)."),
    penalty: float = typer.Option(1.0, min=0.0, help="P: the collective penalty (tokens)."),
    round_seconds: float = typer.Option(1.0, min=0.0, max=3600.0, help="Least round period."),
    deadline_ms: int = typer.Option(20_000, min=1, help="The requests' SLA deadline."),
    sample_rate: float = typer.Option(0.25, min=0.0, max=1.0, help="Oracles' re-execution share."),
    liars: int = typer.Option(0, min=0, help="Oracles that report the opposite."),
    silent: int = typer.Option(0, min=0, help="Oracles that never report."),
    seed: int = seed_option(1, help="Seed of the setup, the load and the rounds."),
    timeout: float = typer.Option(600.0, min=1.0, help="Give up after this many seconds."),
    workdir: Path | None = typer.Option(
        None,
        help="Keep the ledger, store, board and logs here (default: a temporary "
        "directory, removed at the end).",
    ),
    as_json: bool = json_option(help="Print the report as JSON."),
) -> None:
    """Start a devnet, run its rounds, stop it, audit the ledger, report."""
    from mercat.clearing import registry
    from mercat.errors import DevnetError
    from mercat.incentives.collective import mechanism as collective_mechanism
    from mercat.node.devnet import run_devnet
    from mercat.node.genesis import DevnetSetup

    registry.get(mechanism)  # an unknown name fails before anything starts
    collective_mechanism(collective)
    setup = DevnetSetup(
        providers=providers, servers_per_provider=servers, oracles=oracles,
        requesters=requesters, rounds=rounds, per_round=per_round,
        failure_prone=failure_prone, prone_failure_rate=failure_rate, mechanism=mechanism,
        collective=collective, stake=stake, penalty=penalty, round_seconds=round_seconds,
        deadline_ms=deadline_ms, sample_rate=sample_rate, liars=liars, silent=silent, seed=seed,
    )  # fmt: skip
    progress = None if as_json else (lambda text: console.print(f"[dim]{text}[/]"))
    on_round = None if as_json else _print_round
    report = run_devnet(setup, timeout=timeout, workdir=workdir, progress=progress,
                        on_round=on_round)  # fmt: skip
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    tasks = report["tasks"]
    if report["stopped_by"] is None and (not report["audit"]["ok"] or tasks["open"]):
        raise DevnetError(
            f"{tasks['open']} tasks still open, audit {'ok' if report['audit']['ok'] else 'failed'}"
        )


def _print_round(r: dict) -> None:  # type: ignore[type-arg]
    timings = r.get("timings") or {}
    console.print(
        f"round {r['round']}: {r.get('tasks', 0)} tasks, {r.get('paid', 0)} paid, "
        f"{r.get('failed', 0)} failed, mean price {r.get('mean_price')}, "
        f"removed {', '.join(r.get('removed') or []) or 'none'} ({timings.get('total', 0):.1f} s)",
        soft_wrap=True,
    )


def _print_report(report: dict) -> None:  # type: ignore[type-arg]
    print_table(
        "providers",
        [{"asset": p["asset"], "prone": "yes" if p["failure_prone"] else "", "status": p["status"],
          "stake": p["stake_end"], "settled": p["settled"], "failed": p["failed"]}
         for p in report["providers"]],
    )  # fmt: skip
    tasks, audit = report["tasks"], report["audit"]
    compliance = report["sla_compliance"]
    console.print(
        f"tasks {tasks['opened']}: {tasks['paid']} paid, {tasks['failed']} failed, "
        f"{tasks['open']} open; claimed by every server {tasks['claimed_by_every_server']}, "
        f"attested by a quorum {tasks['attested_by_a_quorum']}; SLA compliance "
        f"{'-' if compliance is None else f'{100 * compliance:.1f} %'}; removed: "
        f"{', '.join(report['removed']) or 'none'}; pool {report['pool']:.3f}; "
        f"audit: {'ok' if audit['ok'] else 'FAILED'} ({audit['entries']} entries, "
        f"{audit['signatures_checked']} signatures); {report['seconds']:.1f} s"
        + (f"; stopped by {report['stopped_by']}" if report["stopped_by"] else ""),
        soft_wrap=True,
    )
