"""Provider profit and requester utility (seed 002, §IV, eq. 2-3) from settled tasks.

Eq. 2 as printed: Π_p = Σ_{i=1..n} (P_i · C_i − λ_i R_i), with P_i the price per compute
unit, C_i the compute units allocated to task i, λ_i the penalty factor for an SLA
violation and R_i "the number of requests for quality verification".

Reading chosen (the seed defines the symbols but not how a ledger records them):
- the sum runs over the tasks i in which provider p ran at least one asset;
- P_i·C_i is what p was paid for task i: the ledger records payments, not unit prices,
  and the clearing already priced units (0 when the task failed and the price went back
  to the requester);
- λ_i is the penalty factor λ when the oracles' settled verdict is "SLA violated", and 0
  when the SLA was met: the factor exists "for violation of SLA";
- R_i is the number of quality-verification requests the task drew: the oracle reports
  recorded for it (agreeing, disagreeing and late), at least the quorum q. A violation
  that more oracles had to attest costs more.
Every provider of a task bears the task's penalty term, blindly, as in the collective
rule of seed 000 (the outcome, not the culprit, is known).

Eq. 3: U_r = Σ_i (Q_i − P_i), with P_i the price paid and Q_i the quality-of-service
satisfaction. Reading: P_i is what requester r paid for task i (the task's price when it
succeeded within its SLA; 0 otherwise, refunded to its escrow: mercat's ledger treats an
SLA violation as a failure); Q_i = v_i · s_i with v_i the value of the
task to the requester in base units (given by the caller; by default the price itself,
so a fully satisfied task nets zero) and s_i the satisfaction: 1 when the task succeeded
within its SLA, `violated_satisfaction` (default 0) when it succeeded late or out of SLA,
0 when it failed. Results are exact (`Fraction`; integers when the inputs are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from mercat import validation as check

TaskKey = tuple[int, str]


@dataclass(frozen=True)
class SettledTask:
    """What the ledger recorded about one settled task."""

    round: int
    task: str
    requester: str
    success: bool
    sla_met: bool
    latency_ms: int
    price: int  # what the task charges its request when it pays (its charge)
    payouts: Mapping[str, int] = field(default_factory=dict)  # owner -> received
    providers: tuple[str, ...] = ()  # owners of the task's assets, in asset order
    reports: int = 0  # oracle reports recorded for it

    @property
    def key(self) -> TaskKey:
        return (self.round, self.task)

    @property
    def paid(self) -> int:
        """What the requester paid: the price when the task succeeded within its SLA,
        nothing otherwise (a failed or late task is refunded)."""
        return self.price if self.success and self.sla_met else 0


def provider_profit(
    tasks: Iterable[SettledTask], provider: str, penalty_factor: int | Fraction
) -> int | Fraction:
    """Eq. 2 for `provider`: payments received minus λ·R_i on each SLA-violating task."""
    lam = check.non_negative("penalty_factor", penalty_factor)
    profit: int | Fraction = 0
    for t in tasks:
        if provider not in t.providers:
            continue
        violation = lam if not t.sla_met else 0
        profit += t.payouts.get(provider, 0) - violation * t.reports
    return profit


def requester_utility(
    tasks: Iterable[SettledTask],
    requester: str,
    values: Mapping[TaskKey, int | Fraction] | None = None,
    violated_satisfaction: int | Fraction = 0,
) -> int | Fraction:
    """Eq. 3 for `requester`: Σ (v_i·s_i − P_i) over its settled tasks."""
    partial = check.probability("violated_satisfaction", violated_satisfaction)
    utility: int | Fraction = 0
    for t in tasks:
        if t.requester != requester:
            continue
        value = t.price if values is None else values.get(t.key, t.price)
        if not t.success:
            satisfaction: int | Fraction = 0
        elif t.sla_met:
            satisfaction = 1
        else:
            satisfaction = partial  # type: ignore[assignment]
        utility += value * satisfaction - t.paid
    return utility
