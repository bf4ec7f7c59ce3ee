"""A requester strategy as a plug-in: a budget per round."""

from __future__ import annotations

from collections.abc import Mapping

from mercat.scenarios.agents import Job, JobOutcome, RequesterStrategy


class Budgeted(RequesterStrategy):
    """Bids its value, but never more than what is left of `budget` tokens a round; what
    its jobs were charged in a round comes off the next round's budget."""

    name = "budgeted"
    summary = "bids the value within a per-round budget, less last round's charges"

    def __init__(self, budget: float = 6.0) -> None:
        self.budget = budget
        self.left = budget

    def bid(self, job: Job) -> float:
        bid = min(job.value, max(self.left, 0.0))
        self.left -= bid
        return bid

    def step(self, round_: int, outcomes: Mapping[str, JobOutcome]) -> None:
        charged = sum(o.charged for o in outcomes.values())
        self.left = max(self.budget - charged, 0.0)
