"""`mercat privacy check|calibrate`: seed 002's Alg. 2 on the command line.

`check` exits 0 when the run stays within the budget and 1 when it does not ("privacy
parameters need adjustment"), so a script can gate a training job on it; bad input is exit 2
as everywhere in mercat.
"""

from __future__ import annotations

from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._output import print_json, print_mapping

app = MercatTyper(help="Differential privacy budgets (seed 002, Alg. 2).", no_args_is_help=True)

EpsilonOption = typer.Option(..., help="The ε budget.")
DeltaOption = typer.Option(1e-5, help="The δ of (ε, δ)-DP.")
RoundsOption = typer.Option(1, help="Noisy releases in the run (training rounds).")
RateOption = typer.Option(1.0, help="Probability that a client joins a round.")
Accountant = Literal["auto", "pld", "rdp", "exact"]
AccountantOption = typer.Option(
    "auto",
    help="auto (exact without sampling, PLD with it), pld, rdp (looser, fast) or exact "
    "(un-sampled runs only).",
)
JsonOption = typer.Option(False, "--json", help="Print JSON.")


@app.command()
def check(
    noise_multiplier: float = typer.Option(..., help="z = σ / clip norm (the L2 sensitivity)."),
    epsilon: float = EpsilonOption,
    delta: float = DeltaOption,
    rounds: int = RoundsOption,
    sampling_rate: float = RateOption,
    accountant: Accountant = AccountantOption,
    as_json: bool = JsonOption,
) -> None:
    """Alg. 2: the ε a run of Gaussian releases spends, against a budget (exit 1 if over)."""
    from mercat.privacy.accountant import GaussianRuns, check_differential_privacy

    runs = GaussianRuns(noise_multiplier, rounds, sampling_rate)
    result = check_differential_privacy(runs, epsilon, delta, accountant)  # type: ignore[arg-type]
    data = {
        "noise_multiplier": noise_multiplier,
        "rounds": rounds,
        "sampling_rate": sampling_rate,
        "delta": delta,
        "accountant": result.accountant,  # the one that computed ε (auto resolves)
        "epsilon_actual": result.epsilon_actual,
        "epsilon_budget": result.epsilon_budget,
        "compliant": result.compliant,
    }
    if as_json:
        print_json(data)
    else:
        verdict = "within budget" if result.compliant else "OVER budget: add noise or rounds less"
        print_mapping(f"differential privacy check: {verdict}", data)
    if not result.compliant:
        raise typer.Exit(code=1)


@app.command()
def calibrate(
    epsilon: float = EpsilonOption,
    delta: float = DeltaOption,
    rounds: int = RoundsOption,
    sampling_rate: float = RateOption,
    accountant: Accountant = AccountantOption,
    as_json: bool = JsonOption,
) -> None:
    """The smallest noise multiplier z whose run stays within (ε, δ); σ = z × clip norm."""
    from mercat.privacy.accountant import noise_for_budget

    z = noise_for_budget(epsilon, delta, rounds, sampling_rate, accountant)  # type: ignore[arg-type]
    data = {
        "epsilon": epsilon,
        "delta": delta,
        "rounds": rounds,
        "sampling_rate": sampling_rate,
        "accountant": accountant,
        "noise_multiplier": z,
    }
    if as_json:
        print_json(data)
    else:
        print_mapping("noise for the budget", data)
