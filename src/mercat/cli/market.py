"""`mercat market run`: a whole marketplace, round after round, on a SQL ledger or in memory.

Providers stake and offer GPU servers (and a model), requesters post jobs with escrowed bids
every round, each signed by its owner; each round clears with any registered mechanism, the
tasks run, three oracles attest, the ledger settles under its quorum and its collective rule.
At the end the ledger is audited (every balance from the journal, every signature, every task
against what its owners signed) and the command says who earned what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import (
    collective_option,
    json_option,
    ledger_option,
    mechanism_option,
    mechanism_settings_option,
    seed_option,
)
from mercat.cli._output import console, print_json, print_table
from mercat.cli.clearing import mechanism_options
from mercat.errors import InvalidParameterError

app = MercatTyper(help="Run a marketplace: signed offers and requests, rounds, settlement.")


@app.command("run", renamed={"-o": "-O"})
def run(
    ledger: str | None = ledger_option(
        help="A new ledger to create and run on (sqlite:///market.db, postgresql+psycopg://...); "
        "without it the market runs on an in-memory book.",
    ),
    mechanism: str = mechanism_option("optimal"),
    option: list[str] = mechanism_settings_option(),
    collective: str = collective_option(
        "coll-sr", help="Collective rule (plug-ins run on the in-memory book)"
    ),
    rounds: int = typer.Option(20, min=1, max=100_000, help="Rounds to run."),
    providers: int = typer.Option(4, min=1, max=1000, help="Providers (two servers each)."),
    requesters: int = typer.Option(6, min=1, max=1000, help="Requesters (two jobs a round each)."),
    failure_prone: float = typer.Option(
        0.25, min=0.0, max=1.0, help="Share of servers that fail often."
    ),
    seed: int = seed_option(1),
    keys: Path | None = typer.Option(
        None, help="Directory to write the participants' keys to (mode 600); not kept otherwise."
    ),
    events: Path | None = typer.Option(
        None, help="Append every stage's events to this file, one JSON line each."
    ),
    as_json: bool = json_option(),
) -> None:
    """Run a whole market: offers and requests signed by their owners, rounds, settlement."""
    import numpy as np

    from mercat.clearing import registry
    from mercat.clearing.report import configure
    from mercat.identity import Keypair
    from mercat.incentives.collective import mechanism as collective_mechanism
    from mercat.progress import progress_bar
    from mercat.runtime.memory import MemoryBook
    from mercat.scenarios.marketplace import MarketSetup, build, summary

    unit = 10**6
    spec = collective_mechanism(collective)
    if ledger is not None and not spec.compiled:
        raise InvalidParameterError(
            f"the SQL ledger stores seed 000's four collective rules only; {collective!r} is a "
            "plug-in rule: run it on the in-memory book (leave out --ledger)"
        )
    rule = spec.integer_rule(spec.rule(initial_stake=10.0, task_target=0.01), unit)
    mechanism_class = registry.resolve(mechanism)
    clearing = configure(mechanism_class, mechanism_options(mechanism_class, list(option)))
    setup = MarketSetup(
        providers=providers,
        requesters=requesters,
        failure_prone=failure_prone,
        standard_auction=mechanism == "vcg" or getattr(clearing, "auction", None) == "vcg",
    )
    rng = np.random.default_rng(seed)
    operator = Keypair.generate()
    if ledger is None:
        book = MemoryBook(rule, unit=unit, quorum=2)
    else:
        from mercat.ledger import Ledger, LedgerConfig
        from mercat.ledger.book import LedgerBook

        config = LedgerConfig(operator=operator.public, rule=rule, unit=unit, quorum=2)
        book = LedgerBook(Ledger.init(ledger, config), operator)
    market = build(book, clearing, setup, rng, spec)
    if events is not None:
        from dataclasses import replace

        from mercat.runtime.events import JsonlLog

        market.plan = replace(market.plan, log=JsonlLog(events))
    label = f"{mechanism} on {'the ledger' if ledger else 'an in-memory book'}"
    with progress_bar(f"rounds ({label})", rounds, enabled=not as_json) as advance:
        for round_ in range(1, rounds + 1):
            market.run(1, start=round_)
            advance(1)
    result = summary(market)
    book.verify()
    result["audit"] = "ok"
    result["book"] = ledger or "memory"
    result["mechanism"] = mechanism
    result["collective"] = collective
    if keys is not None and ledger is not None:
        _write_keys(keys, book.keyring)
    if ledger is not None:
        book.ledger.close()
    if as_json:
        print_json(result)
        return
    print_table(
        f"{rounds} rounds, {label}, {collective}",
        [
            {"round": r["round"], "requests": r["requests"], "servers": r["servers"],
             "tasks": r["tasks"], "paid": r["paid"], "failed": r["failed"],
             "welfare": r["welfare"], "charged": r["charged"], "margin": r["margin"],
             "removed": ", ".join(r["removed"])}
            for r in result["per_round"]
        ],
    )  # fmt: skip
    earners = sorted(set(result["earned"]) | set(result["spent"]))
    print_table(
        "who earned what (tokens)",
        [
            {"participant": n, "earned": result["earned"].get(n, 0.0),
             "spent": result["spent"].get(n, 0.0)}
            for n in earners
        ],
    )  # fmt: skip
    console.print(
        f"tasks {result['tasks']}: {result['paid']} paid, {result['failed']} failed "
        f"({100 * result['task_failure_rate']:.1f} %); removed: "
        f"{', '.join(result['removed']) or 'none'}; reward pool {result['pool']:.3f}; "
        f"audit: {result['audit']}"
    )


def _write_keys(directory: Path, keyring: dict) -> None:  # type: ignore[type-arg]
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in keyring.items():
        path = directory / f"{name}.key"
        path.touch(mode=0o600)
        path.write_text(key.seed.hex() + "\n")


@app.command("admission", renamed={"--seeds": "--runs"})
def admission(
    mechanism: str = mechanism_option("optimal"),
    collective: Literal["coll-rep", "coll-sr"] = typer.Option(
        "coll-sr", help="A rule that weighs by stake."
    ),
    rounds: int = typer.Option(40, min=1, max=10_000, help="Rounds per run."),
    seeds: int = typer.Option(5, "--runs", min=1, max=1000, help="Paired runs (seeds 1..N)."),
    as_json: bool = json_option(),
) -> None:
    """Stake-weighted admission against none, seed for seed: welfare, failures, removals."""
    from mercat.progress import progress_bar
    from mercat.scenarios.admission import compare

    with progress_bar("paired runs", seeds, enabled=not as_json) as advance:
        result = compare(mechanism, collective, rounds, seeds, progress=advance)
    if as_json:
        print_json(result)
        return
    print_table(
        f"{mechanism} under {collective}, {rounds} rounds, mean of {seeds} paired seeds",
        [{"variant": variant, **values} for variant, values in result["mean"].items()],
    )


@app.command("events")
def events_summary(
    path: Path = typer.Argument(..., help="An event log written by `mercat market run --events`."),
    as_json: bool = json_option(),
) -> None:
    """Per round, from an event log: clearing, tasks, failures, charges, margin, pool, removals."""
    from mercat.runtime.events import summarize

    rounds = summarize(path)
    if as_json:
        print_json(rounds)
    else:
        print_table(f"rounds in {path}", rounds)
