"""`mercat price`: the provider's Stackelberg price for a set of requesters (seed 002, §III.C)."""

from __future__ import annotations

import math

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._output import print_json, print_mapping, print_table

app = MercatTyper()


@app.command()
def price(
    satisfaction: list[float] = typer.Argument(
        ..., help="Each requester's satisfaction scale a_i: Q_i(C) = a_i ln(1 + C)."
    ),
    cost: float = typer.Option(..., help="The provider's cost per compute unit c."),
    capacity: float = typer.Option(math.inf, help="Compute units the provider can sell."),
    violation: float = typer.Option(0.0, help="Probability v that a unit misses its SLA."),
    penalty_factor: float = typer.Option(0.0, help="λ of eq. 2, per oracle report."),
    reports: int = typer.Option(0, help="R of eq. 2: oracle reports a violation draws."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stackelberg pricing: the provider posts the price that maximizes eq. 2 given how the
    requesters respond (eq. 3); exact, with an expected SLA penalty v·λ·R per unit."""
    from mercat import validation as check
    from mercat.clearing.stackelberg import stackelberg_price

    check.probability("violation", violation)
    check.non_negative("penalty factor", penalty_factor)
    check.integer("reports", reports, 0)
    outcome = stackelberg_price(satisfaction, cost, capacity, violation * penalty_factor * reports)
    summary = {
        "price": outcome.price,
        "units_sold": outcome.sold,
        "provider_profit": outcome.profit,
        "requester_utility": float(outcome.utilities.sum()),
        "capacity_binding": outcome.capacity_binding,
    }
    rows = [
        {"requester": i, "a": a, "units": float(c), "utility": float(u)}
        for i, (a, c, u) in enumerate(
            zip(satisfaction, outcome.demands, outcome.utilities, strict=True)
        )
    ]
    if as_json:
        print_json({"summary": summary, "requesters": rows})
    else:
        print_mapping("Stackelberg price (provider leads)", summary)
        print_table("requesters' best responses", rows)
