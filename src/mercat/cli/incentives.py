"""`mercat calibrate` and `mercat ruin`: the formulas of seed 000 on the command line."""

from __future__ import annotations

from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import seed_option
from mercat.cli._output import print_json, print_mapping, print_table

app = MercatTyper()


@app.command()
def calibrate(
    target: float = typer.Option(..., help="Target task failure rate F_t^target, in (0, 1)."),
    assets: int = typer.Option(4, help="Assets per task |A_t|."),
    penalty: float = typer.Option(1.0, help="Penalty P per failed task."),
    failure_rate: float | None = typer.Option(
        None, help="An experienced task failure rate F_t at which to evaluate the loss (eq. 7)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reward, per-asset target and expected loss for a task failure target (eq. 2-7)."""
    from mercat.incentives.calibration import calibrate as run

    result = run(target, assets, penalty, failure_rate)
    if as_json:
        print_json(result)
    else:
        print_mapping("collective-incentive calibration", result)


@app.command()
def ruin(
    stake_ratio: float = typer.Option(..., help="x in S0 = x·P."),
    failure_rate: float = typer.Option(..., help="Experienced task failure rate F."),
    target: float = typer.Option(..., help="Target task failure rate F_t^target (sets R)."),
    horizon: int = typer.Option(10_000, help="Number of tasks N."),
    penalty: float = typer.Option(1.0, help="Penalty P."),
    method: Literal["exact", "lundberg", "diffusion", "monte-carlo", "all"] = typer.Option(
        "all", help="How ruin is computed; all: every method side by side."
    ),
    inclusive: bool = typer.Option(
        False, "--inclusive", help="Ruin at S <= P (the authors' simulator) instead of S < P."
    ),
    level: float | None = typer.Option(None, help="Ruin level (default: the penalty P)."),
    claims: Literal["bernoulli", "poisson"] = typer.Option(
        "bernoulli", help="bernoulli (one task per step) or poisson."
    ),
    samples: int = typer.Option(20_000, help="Monte Carlo paths."),
    seed: int = seed_option(0, help="Monte Carlo seed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Probability that an asset's stake is ruined within N tasks (seed 000, Fig. 3)."""
    from mercat.incentives import ruin as r
    from mercat.validation import choice

    choice("method", method, (*r.METHODS, "all"))
    problem = r.RuinProblem(
        stake_ratio=stake_ratio,
        failure_rate=failure_rate,
        task_target=target,
        horizon=horizon,
        penalty=penalty,
        inclusive=inclusive,
        level=level,
        claims=claims,  # type: ignore[arg-type]
    )
    methods = r.METHODS if method == "all" else (method,)
    estimates = r.ruin_table(problem, methods, samples=samples, seed=seed)
    rows = [e.as_dict() for e in estimates]
    if as_json:
        print_json(
            {
                "problem": {
                    "stake_ratio": stake_ratio,
                    "failure_rate": failure_rate,
                    "task_target": target,
                    "reward": float(problem.reward),
                    "horizon": horizon,
                    "penalty": penalty,
                    "ruin": ("S <= " if inclusive else "S < ") + str(float(problem.ruin_level)),
                    "claims": claims,
                },
                "estimates": rows,
            }
        )
    else:
        shown = [
            {k: row[k] for k in ("method", "probability", "low", "high", "samples")} for row in rows
        ]
        print_table(f"ruin probability within {horizon} tasks", shown)
