"""Stage 4 of a round: run the tasks. What happened to each is an `Outcome`.

An executor is anything with `execute(round, tasks, context, rng) -> [Outcome]`:

- `SampledExecution` draws outcomes from the assets' failure rates: a task fails with
  probability 1 - Π(1 - F_a) over its assets and over the combinations of its assets that
  have their own failure rate (seed 000, eq. 1), and breaks its SLA with probability
  1 - Π(1 - V_a) over its servers (a slow server makes the task late);
- real work by provider agents (processes that fetch inputs by CID, run the workload in a
  sandbox and store the outputs) reports the same `Outcome`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mercat import validation as check
from mercat.runtime.snapshot import RoundMarket
from mercat.runtime.terms import TaskTerms


@dataclass(frozen=True, slots=True)
class Outcome:
    """What running a task did: it succeeded or not, how long it took, what it produced."""

    task: TaskTerms
    success: bool
    latency_ms: int
    digest: str | None = None


class Executor(Protocol):
    def execute(
        self,
        round_: int,
        tasks: Sequence[TaskTerms],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Outcome]: ...


class SampledExecution:
    """Outcomes drawn from failure rates (see the module docstring).

    `failure_rates[asset]` is F_a (assets not listed never fail); `combinations` lists
    (members, rate): the combination fails with that rate when all its members run one task;
    `sla_violations[asset]` is the probability that a server makes a task late. A task that
    meets its SLA reports `latency_ms` (half its deadline, or 1 without one); a late task
    reports one millisecond past its deadline.
    """

    def __init__(
        self,
        failure_rates: Mapping[str, float] | None = None,
        combinations: Iterable[tuple[Iterable[str], float]] = (),
        sla_violations: Mapping[str, float] | None = None,
    ) -> None:
        self.failure_rates = dict(failure_rates or {})
        self.sla_violations = dict(sla_violations or {})
        for name, table in (
            ("failure rate", self.failure_rates),
            ("SLA violation rate", self.sla_violations),
        ):
            for asset, rate in table.items():
                check.probability(f"{name} of {asset!r}", rate)
        self.combinations: dict[str, list[tuple[frozenset[str], float]]] = {}
        for members, rate in combinations:
            group = frozenset(members)
            check.probability(f"failure rate of combination {sorted(group)}", rate)
            for member in group:
                self.combinations.setdefault(member, []).append((group, rate))

    def set_failure_rate(self, asset: str, rate: float) -> None:
        self.failure_rates[asset] = check.probability(f"failure rate of {asset!r}", rate)

    def add_combination(self, members: Iterable[str], rate: float) -> None:
        group = frozenset(members)
        check.probability(f"failure rate of combination {sorted(group)}", rate)
        for member in group:
            self.combinations.setdefault(member, []).append((group, rate))

    def survival(self, assets: Sequence[str]) -> float:
        """Π(1 - F) over the task's assets and the combinations it contains (eq. 1)."""
        p = 1.0
        rates = self.failure_rates
        for asset in assets:
            p *= 1.0 - rates.get(asset, 0.0)
        if self.combinations:
            inside = set(assets)
            seen: set[frozenset[str]] = set()
            for asset in assets:
                for group, rate in self.combinations.get(asset, ()):
                    if group not in seen and group <= inside:
                        seen.add(group)
                        p *= 1.0 - rate
        return p

    def execute(
        self,
        round_: int,
        tasks: Sequence[TaskTerms],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Outcome]:
        outcomes = []
        late_rates = self.sla_violations
        for task in tasks:
            success = bool(rng.random() < self.survival(task.assets))
            deadline = context.requests[task.request].terms.deadline_ms
            on_time = 1.0
            if late_rates:
                for asset in task.assets:
                    on_time *= 1.0 - late_rates.get(asset, 0.0)
                late = bool(rng.random() >= on_time)
            else:
                late = False
            # a late task reports a latency past its deadline, an on-time one half of it
            latency = (deadline + 1 if deadline else 1) if late else max(1, deadline // 2)
            outcomes.append(Outcome(task, success, latency))
        return outcomes
