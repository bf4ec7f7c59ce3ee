"""`mercat dynamics`: market-maker best-response dynamics of seed 001's four attempts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import seed_option
from mercat.cli._output import console, print_json, print_mapping, print_table

app = MercatTyper()

SHOWN_STEPS = 30
"""Human output shows this many turns at the start and at the end (--json lists all)."""


def _compact(allocation: Any) -> str:
    """α as 't1→n1+n2, t2→n3' (or '∅')."""
    parts = [f"{t}→{'+'.join(sorted(row))}" for t, row in sorted(allocation.as_dict().items())]
    return ", ".join(parts) or "∅"


def _strategies(spec: str, count: int) -> list[str]:
    from mercat.errors import InvalidParameterError

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if len(names) == 1:
        return names * count
    if len(names) != count:
        raise InvalidParameterError(
            f"--strategy lists {len(names)} strategies for {count} makers; give one, or one "
            "per maker"
        )
    return names


@app.command()
def dynamics(
    market_file: Path = typer.Argument(..., help="Market JSON file (docs/market-format.md)."),
    attempt: int = typer.Option(4, "--attempt", help="Seed 001's attempt: 1, 2, 3 or 4."),
    makers: int = typer.Option(2, "--makers", help="Number of market-makers."),
    rounds: int = typer.Option(
        10_000,
        "--rounds",
        help="At most this many rounds (a turn each); the dynamics stop earlier at a fixed "
        "point or a cycle.",
    ),
    tick: float | None = typer.Option(
        None, "--tick", help="Smallest price step (default 0.001; 0.05 gives short traces)."
    ),
    strategy: str = typer.Option(
        "perfect-information",
        "--strategy",
        help="Strategy of every maker, or a comma-separated list with one per maker: "
        "{choices:market-maker strategy}, or module:Class.",
    ),
    sigma: float = typer.Option(0.1, help="Noise of noisy-estimates makers."),
    specialization: bool = typer.Option(
        False, "--specialization", help="Attempts 3-4: the current best is a union of proposals."
    ),
    penalty: float | None = typer.Option(
        None, "--penalty", help="γ, paid by a maker whose cleared proposal is not IR (default 1)."
    ),
    seed: int = seed_option(0, help="Seed for the makers' random estimates."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (every turn)."),
) -> None:
    """Run the market-makers' best-response dynamics and print the trace."""
    from mercat.clearing.posted_price import makers as registry
    from mercat.clearing.posted_price.dynamics import DEFAULT_PENALTY, DEFAULT_TICK, run_dynamics
    from mercat.clearing.posted_price.template import mechanism_for
    from mercat.errors import InvalidParameterError
    from mercat.market.market_io import load_market
    from mercat.progress import progress_bar
    from mercat.validation import integer, non_negative, positive

    mechanism = mechanism_for(attempt, specialization=specialization)
    count = integer("--makers", makers, minimum=1)
    if count > registry.MAX_MAKERS:
        raise InvalidParameterError(f"--makers must be at most {registry.MAX_MAKERS}, got {count}")
    # Checked here as well as by run_dynamics: before the progress bar's first line.
    integer("--rounds", rounds, minimum=1)
    tick = float(positive("--tick", DEFAULT_TICK if tick is None else tick))
    penalty = float(non_negative("--penalty", DEFAULT_PENALTY if penalty is None else penalty))
    names = _strategies(strategy, count)
    classes = [registry.resolve(name) for name in names]  # unknown names fail before the file
    market = load_market(market_file)
    agents = [
        cls(sigma) if cls is registry.NoisyEstimates else cls()  # type: ignore[call-arg]
        for cls in classes
    ]
    # Off a terminal: a line per tenth of the most rounds; a fixed point or a cycle ends it early.
    with progress_bar("best-response rounds", rounds, enabled=not as_json) as advance:
        trace = run_dynamics(
            market,
            agents,
            attempt=mechanism,
            rounds=rounds,
            tick=tick,
            penalty=penalty,
            seed=seed,
            progress=advance,
        )
    settled = trace.settlement
    final = trace.standing
    summary = {
        "market": market.name or str(market_file),
        "attempt": mechanism.attempt,
        "mechanism": mechanism.title,
        "specialization": mechanism.specialization,
        "makers": [{"id": i, "strategy": s} for i, s in zip(trace.makers, names, strict=True)],
        "tick": trace.tick,
        "rounds": trace.rounds,
        "converged": trace.converged,
        "cycle": None
        if trace.cycle is None
        else {"first_round": trace.cycle[0], "period": trace.cycle[1]},
        "proposals": trace.proposals,
        "milp_solves": trace.milp_solves,
        "final": {
            "holders": list(final.holders()),
            "allocation": final.allocation.as_dict(),
            "payments": dict(final.payments),
            "rewards": dict(final.rewards),
            "margin": final.margin,
            # The proposed allocation's welfare; members that fail individual rationality
            # against the true values and costs do not trade, so what clears is settled_welfare.
            "welfare": trace.welfare,
            "settled_allocation": settled.allocation.as_dict(),
            "settled_welfare": settled.welfare,
            "payoffs": settled.payoffs,
            "failed": list(settled.failed),
            "ir_failures": list(settled.reasons),
        },
    }
    if as_json:
        print_json({**summary, "steps": [s.as_dict() for s in trace.steps]})
        return
    rows = [
        {
            "round": s.round,
            "maker": s.maker,
            "outcome": str(s.outcome),
            "offer margin": "-" if s.proposal is None else s.proposal.margin,
            "holders": "+".join(s.standing.holders()) or "-",
            "allocation": _compact(s.standing.allocation),
            "margin": s.margin,
            "welfare": s.welfare,
        }
        for s in trace.steps
    ]
    if len(rows) > 2 * SHOWN_STEPS:
        hidden = len(rows) - 2 * SHOWN_STEPS
        gap = dict.fromkeys(rows[0], "")
        gap["round"] = f"({hidden} turns)"
        rows = [*rows[:SHOWN_STEPS], gap, *rows[-SHOWN_STEPS:]]
    print_table(f"attempt {mechanism.attempt}: {mechanism.title}", rows)
    status = "converged" if trace.converged else "still moving"
    if trace.cycle is not None:
        status = f"cycles: the round-{trace.cycle[0]} standing recurs every {trace.cycle[1]} rounds"
    print_mapping(
        "dynamics",
        {
            "status": status,
            "rounds": trace.rounds,
            "proposals": trace.proposals,
            "final allocation": _compact(final.allocation),
            "margin M": final.margin,
            "welfare W (proposed)": summary["final"]["welfare"],
            "welfare W (settled)": summary["final"]["settled_welfare"],
            "payoffs": ", ".join(f"{k} {v:.6g}" for k, v in settled.payoffs.items()) or "-",
            "failed (paid γ)": ", ".join(settled.failed) or "-",
            "HiGHS solves": trace.milp_solves,
        },
    )
    if not trace.converged and trace.cycle is None:
        console.print(f"(no fixed point within {trace.rounds} rounds; raise --rounds)")
