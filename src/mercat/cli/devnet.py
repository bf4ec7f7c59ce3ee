"""`mercat devnet up`: a whole market of processes on loopback (docs/devnet.md): a node with
its round loop, provider agents (some failure-prone), oracles (some lying or silent, if
asked), requesters; R rounds, then the ledger's audit and a report. `mercat devnet init
DIR`: the same market's ledger, keys and commands, for participants started by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import json_option, mechanism_option, seed_option
from mercat.cli._output import console, print_json, print_table

app = MercatTyper(help="Run a local market of processes: node, agents, oracles, requesters.")


# The options `up` and `init` share: one market, run at once or started by hand.
PROVIDERS = typer.Option(4, min=1, max=200, help="Provider agents (processes).")
SERVERS = typer.Option(2, min=1, max=16, help="Servers per provider.")
ORACLES = typer.Option(3, min=1, max=31, help="Oracles; the quorum is a majority.")
REQUESTERS = typer.Option(5, min=1, max=200, help="Requesters (processes).")
ROUNDS = typer.Option(5, min=1, max=100_000, help="Rounds to run.")
PER_ROUND = typer.Option(2, min=1, max=100, help="Requests per requester per round.")
FAILURE_PRONE = typer.Option(
    0.5, min=0.0, max=1.0, help="Share of providers whose servers fail often."
)
FAILURE_RATE = typer.Option(0.3, min=0.0, max=1.0, help="Their F_a.")
MECHANISM = mechanism_option(
    "optimal",
    references=False,
    more="double-auction and distributed-auction (seed 003's) clear per-unit asks and one "
    "replica per request.",
)
COLLECTIVE = typer.Option(
    "coll-sr", help="Collective rule the devnet's ledger enforces (seed 000's four)."
)
STAKE = typer.Option(4.0, min=0.0, help="S0: each asset's stake (tokens).")
PENALTY = typer.Option(1.0, min=0.0, help="P: the collective penalty (tokens).")
ROUND_SECONDS = typer.Option(1.0, min=0.0, max=3600.0, help="Least round period.")
DEADLINE_MS = typer.Option(20_000, min=1, help="The requests' SLA deadline.")
SAMPLE_RATE = typer.Option(0.25, min=0.0, max=1.0, help="Oracles' re-execution share.")
LIARS = typer.Option(0, min=0, help="Oracles that report the opposite.")
SILENT = typer.Option(0, min=0, help="Oracles that never report.")
SEED = seed_option(1, help="Seed of the setup, the load and the rounds.")
AUCTIONEER_PROCESSES = typer.Option(
    0,
    min=0,
    max=31,
    help="With --mechanism distributed-auction: run seed 003's auctioneer as this many "
    "provider processes (at least 3; k = (m-1)//2) beside the agents, the node sending "
    "each round's bids to them; 0: inside the node.",
)
SEALED_SHARE = typer.Option(
    0.0,
    min=0.0,
    max=1.0,
    help="Share of the requesters' training and preprocessing requests whose inputs and "
    "output are sealed to their providers.",
)


# The options of `init` and `up` that make the devnet's setup (both commands declare them).
SETUP_OPTIONS = (
    "providers", "servers", "oracles", "requesters", "rounds", "per_round", "failure_prone",
    "failure_rate", "mechanism", "collective", "stake", "penalty", "round_seconds",
    "deadline_ms", "sample_rate", "liars", "silent", "seed", "sealed_share",
    "auctioneer_processes",
)  # fmt: skip


def _setup(arguments: dict):  # type: ignore[no-untyped-def,type-arg]
    """The devnet's setup from a command's arguments (its `SETUP_OPTIONS`); an unknown
    mechanism or collective rule fails before anything is created or started."""
    from mercat.clearing import registry
    from mercat.incentives.collective import mechanism as collective_mechanism
    from mercat.node.genesis import DevnetSetup

    options = {name: arguments[name] for name in SETUP_OPTIONS}
    registry.get(options["mechanism"])
    collective_mechanism(options["collective"])
    options["servers_per_provider"] = options.pop("servers")
    options["prone_failure_rate"] = options.pop("failure_rate")
    return DevnetSetup(**options)


@app.command("init")
def init(
    directory: Path = typer.Argument(..., help="The devnet's directory (new, or empty)."),
    providers: int = PROVIDERS,
    servers: int = SERVERS,
    oracles: int = ORACLES,
    requesters: int = REQUESTERS,
    rounds: int = ROUNDS,
    per_round: int = PER_ROUND,
    failure_prone: float = FAILURE_PRONE,
    failure_rate: float = FAILURE_RATE,
    mechanism: str = MECHANISM,
    collective: Literal["free", "coll-stake", "coll-rep", "coll-sr"] = COLLECTIVE,
    stake: float = STAKE,
    penalty: float = PENALTY,
    round_seconds: float = ROUND_SECONDS,
    deadline_ms: int = DEADLINE_MS,
    sample_rate: float = SAMPLE_RATE,
    liars: int = LIARS,
    silent: int = SILENT,
    seed: int = SEED,
    sealed_share: float = SEALED_SHARE,
    auctioneer_processes: int = AUCTIONEER_PROCESSES,
    port: int = typer.Option(8000, min=1, max=65535, help="The node's port on 127.0.0.1."),
    as_json: bool = json_option(help="Print what was created as JSON."),
) -> None:
    """Create a devnet for participants started by hand: its ledger (genesis), a key file
    per participant (0600), and a README.md with the command that starts each of them (the
    ones `up` runs). Refuses a directory that exists and is not empty."""
    from mercat.node.devnet_commands import init as init_devnet

    setup = _setup(locals())
    made = init_devnet(directory, setup, port)
    if as_json:
        print_json(made)
        return
    console.print(
        f"devnet in {made['directory']}: ledger {made['ledger']}, node {made['node']}",
        soft_wrap=True,
    )
    console.print(f"run these from {made['directory']} (also in its README.md):", soft_wrap=True)
    for line in made["commands"].values():  # type: ignore[attr-defined]
        console.print(line, soft_wrap=True, markup=False, highlight=False)


@app.command("up")
def up(
    providers: int = PROVIDERS,
    servers: int = SERVERS,
    oracles: int = ORACLES,
    requesters: int = REQUESTERS,
    rounds: int = ROUNDS,
    per_round: int = PER_ROUND,
    failure_prone: float = FAILURE_PRONE,
    failure_rate: float = FAILURE_RATE,
    mechanism: str = MECHANISM,
    collective: Literal["free", "coll-stake", "coll-rep", "coll-sr"] = COLLECTIVE,
    stake: float = STAKE,
    penalty: float = PENALTY,
    round_seconds: float = ROUND_SECONDS,
    deadline_ms: int = DEADLINE_MS,
    sample_rate: float = SAMPLE_RATE,
    liars: int = LIARS,
    silent: int = SILENT,
    seed: int = SEED,
    sealed_share: float = SEALED_SHARE,
    auctioneer_processes: int = AUCTIONEER_PROCESSES,
    timeout: float = typer.Option(600.0, min=1.0, help="Give up after this many seconds."),
    workdir: Path | None = typer.Option(
        None,
        help="Keep the ledger, store, board and logs here (default: a temporary "
        "directory, removed at the end).",
    ),
    as_json: bool = json_option(help="Print the report as JSON."),
) -> None:
    """Start a devnet, run its rounds, stop it, audit the ledger, report."""
    from mercat.errors import DevnetError
    from mercat.node.devnet import run_devnet

    setup = _setup(locals())
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
