"""What stake-weighted admission costs and buys (`mercat.runtime.admission`).

Coll-Rep and Coll-SR (seed 000) select assets in proportion to stake; a priced mechanism
selects them by welfare. mercat's rule where the two meet admits each server to a round with
probability stake / S0 before the mechanism clears. `compare` runs the same marketplace
(`mercat.scenarios.marketplace`), seed for seed, with and without admission and reports per
variant: the welfare cleared, the welfare of tasks that paid (what the market delivered), the
task failure rate, and the removals. Paired seeds: the two variants face the same providers,
failure rates and jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from mercat import validation as check
from mercat.clearing import registry
from mercat.incentives.collective import mechanism as collective_mechanism
from mercat.runtime.memory import MemoryBook
from mercat.scenarios.marketplace import MarketSetup, build

UNIT = 10**6


def run_variant(
    mechanism: str, collective: str, admission: bool, rounds: int, seed: int, setup: MarketSetup
) -> dict[str, float]:
    spec = collective_mechanism(collective)
    rule = spec.integer_rule(spec.rule(initial_stake=setup.stake, task_target=0.01), UNIT)
    book = MemoryBook(rule, unit=UNIT, quorum=2)
    market = build(book, registry.create(mechanism), setup, np.random.default_rng(seed), spec)
    if not admission:
        market.plan = replace(market.plan, admission=None)
    market.run(rounds)
    tasks = sum(len(r.tasks) for r in market.reports)
    paid = sum(r.paid for r in market.reports)
    delivered = 0.0
    for report in market.reports:
        paid_requests = {s.request for s in report.settlements if s.paid}
        for request in report.market.requests:
            if request.id in paid_requests:
                delivered += request.value
    return {
        "welfare": sum(r.welfare for r in market.reports),
        "delivered_value": delivered,
        "tasks": tasks,
        "task_failure_rate": (tasks - paid) / tasks if tasks else 0.0,
        "removed": sum(len(r.removed) for r in market.reports),
    }


def compare(
    mechanism: str = "optimal",
    collective: str = "coll-sr",
    rounds: int = 40,
    seeds: int = 5,
    setup: MarketSetup | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Both variants over `seeds` paired seeds: per-seed rows and the means (`progress(1)`
    after each seed's pair)."""
    check.integer("rounds", rounds, minimum=1)
    check.integer("seeds", seeds, minimum=1)
    setup = setup or MarketSetup()
    rows = []
    for seed in range(1, seeds + 1):
        on = run_variant(mechanism, collective, True, rounds, seed, setup)
        off = run_variant(mechanism, collective, False, rounds, seed, setup)
        rows.append({"seed": seed, "admission": on, "no_admission": off})
        if progress is not None:
            progress(1)
    means = {
        variant: {
            key: float(np.mean([row[variant][key] for row in rows])) for key in rows[0][variant]
        }
        for variant in ("admission", "no_admission")
    }
    return {"mechanism": mechanism, "collective": collective, "rounds": rounds,
            "seeds": seeds, "mean": means, "runs": rows}  # fmt: skip
