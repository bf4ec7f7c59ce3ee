"""Seed 001's sequential-improvement template and its four IMPROVEMENT tests (attempts 1-4).

The template (seed 001, "A General Template") keeps a current best proposal b in memory and
goes through the market-makers' proposals in order; for each proposal i it asks
IMPROVEMENT(b, i) whether i replaces b. `SequentialImprovement` owns that loop (`submit`,
`run`); each attempt is a subclass that fills in the decision (`improvement`):

1. `CentralizedMarketMaker`: one market-maker routes the market. The maker of the first
   proposal is that market-maker; its later proposals replace its earlier ones, anyone
   else's are ignored.
2. `MinimumMargin`: i replaces b iff M(π_i, φ_i) < M(π_b, φ_b).
3. `ParetoImprovement`: with C_T, C_N the requests and nodes allocated under both α_i and
   α_b, i replaces b iff C_T ∪ C_N ≠ ∅ and i strictly improves every one of them:
   π_i(t) < π_b(t) for t ∈ C_T and φ_i(n) > φ_b(n) for n ∈ C_N. Without a conflicting
   participant b stays ("i could have included the contents of b's proposal").
4. `ToleranceImprovement`, the reading of ../shared/seeds/README.md (the text flips the
   meaning of IMPROVEMENT here; this is the operational rule its proof supports):
   Δ = Σ_{t∈C_T} (π_b(t) - π_i(t)) + Σ_{n∈C_N} (φ_i(n) - φ_b(n)), the total improvement i
   offers the conflicting participants, and ∇ = Σ_{t∈T_b∖C_T} (π̄_b(t) - π_b(t)) +
   Σ_{n∈N_b∖C_N} (φ_b(n) - φ̲_b(n)), the slack of b's tolerances on its non-conflicting
   participants.
   - i replaces b iff i strictly improves every conflicting participant and ∇ < Δ
     (Δ > ∇ ≥ 0 needs a conflicting participant, as in attempt 3);
   - if i strictly improves every conflicting participant but ∇ ≥ Δ, b stays, re-priced:
     every conflicting participant gets i's terms (π_b'(t) = π_i(t), φ_b'(n) = φ_i(n)),
     the non-conflicting participants give up the amount Δ out of b's slack, each in
     proportion to its own slack (π_b'(t) = π_b(t) + Δ·slack(t)/∇, φ_b'(n) = φ_b(n) -
     Δ·slack(n)/∇), so π_b' ≤ π̄_b, φ_b' ≥ φ̲_b and b's margin is unchanged;
   - otherwise (i is not a strict improvement for every conflicting participant) b stays
     as it is: there is no Pareto improvement to match.

Three rules the seed leaves implicit, chosen here:
- Conflicting nodes in markets with resources: a node's cost there depends on its workload
  (per-unit costs), and the seed models that by instantiating the node once per workload,
  each instantiation a participant of its own. So in a market that declares resources, a
  node is a conflicting participant only if it serves the same requests under both
  proposals; without resources (the running example) every node used by both conflicts.
  Comparing rewards for different workloads would compare payments, not utilities, and
  then a lower-surplus proposal can win (a node paid more for more work looks "improved").
- Validity: the mechanism knows V, so a proposal whose allocation is not in V (or names
  requests or nodes the market lacks) is rejected and changes nothing. It cannot check
  individual rationality (it knows no values or costs): that is settled after the fact,
  with the penalty γ (`mercat.clearing.posted_price.dynamics.settle`).
- An empty current best (an allocation that serves no one) binds no one in attempts 3
  and 4: having no participants it has nothing to protect, and any proposal replaces it
  (otherwise "no conflicting participant, keep b" would freeze the market at α∅ forever).
  In attempts 1 and 2 it stands like any other proposal (a zero-margin α∅ is exactly the
  bad equilibrium the seed describes for attempt 2).

Specialization (seed 001, "Extensions"): with `specialization=True` (attempts 3 and 4) the
current best is a union of compatible proposals (`Standing`). A proposal compatible with
every member (no shared participant, union in V) is appended; otherwise the members it
conflicts with are merged into one holder, IMPROVEMENT is applied against that holder (its
tolerances are the union of theirs), and if it wins those members leave and it joins. A
re-priced group keeps its total margin; the amount Δ is taken from the members' slack in
proportion, so margin can move between members of the group.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, NamedTuple

from mercat.clearing.posted_price.proposal import (
    Proposal,
    Standing,
    compatible,
    merge,
    shared_participants,
)
from mercat.errors import InvalidParameterError
from mercat.market.constraints import is_valid
from mercat.market.model import Market


class Outcome(StrEnum):
    """What a submitted proposal did to the standing (or that the maker passed)."""

    OPENED = "opened"  # there was no current best; the proposal is it now
    REPLACED = "replaced"  # IMPROVEMENT says the proposal replaces the holder
    APPENDED = "appended"  # specialization: compatible with every member, joins the union
    REPRICED = "repriced"  # attempt 4: the holder stays, re-priced to match the proposal
    KEPT = "kept"  # the holder stays as it is
    REJECTED = "rejected"  # not in V, or names participants the market lacks
    PASSED = "passed"  # the maker proposed nothing (dynamics only)

    @property
    def accepted(self) -> bool:
        """Whether the proposal now stands (as the current best or part of it)."""
        return self in (Outcome.OPENED, Outcome.REPLACED, Outcome.APPENDED)


class Shared(NamedTuple):
    """The conflicting participants of a holder and a challenger: C_T and C_N."""

    requests: frozenset[str]
    nodes: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    """IMPROVEMENT(b, i): REPLACED, KEPT, or REPRICED with the re-priced holder."""

    outcome: Outcome
    reason: str = ""
    holder: Proposal | None = None  # REPRICED only: b with its new payment rule


@dataclass(frozen=True)
class Submission:
    """The standing after one proposal, and what happened to that proposal."""

    standing: Standing
    outcome: Outcome
    reason: str = ""


class SequentialImprovement(ABC):
    """The sequential-improvement template: the loop is here, IMPROVEMENT in subclasses."""

    attempt: ClassVar[int]
    title: ClassVar[str]
    supports_specialization: ClassVar[bool] = False
    empty_holder_binds: ClassVar[bool] = True  # does a current best serving no one stand?

    def __init__(self, specialization: bool = False) -> None:
        if specialization and not self.supports_specialization:
            raise InvalidParameterError(
                f"attempt {self.attempt} has no notion of conflicting participants, so no "
                "specialization extension (attempts 3 and 4 have one)"
            )
        self.specialization = bool(specialization)

    @abstractmethod
    def improvement(self, best: Proposal, challenger: Proposal, shared: Shared) -> Verdict:
        """IMPROVEMENT(b, i): does the challenger replace the current best? `shared` holds
        the conflicting participants (C_T, C_N)."""

    # --- the loop ------------------------------------------------------------------------

    def submit(self, market: Market, standing: Standing, proposal: Proposal) -> Submission:
        """Process one proposal against the current best."""
        reasons = proposal.check_against(market)
        if not reasons:
            reasons = is_valid(market, proposal.allocation).reasons
        if reasons:
            return Submission(standing, Outcome.REJECTED, "not in V: " + "; ".join(reasons))
        if not standing or (not self.empty_holder_binds and not standing.serves_anyone):
            return Submission(Standing((proposal,)), Outcome.OPENED)
        if not self.specialization:
            (holder,) = standing.members
            return self._apply(market, standing, (holder,), (), proposal)
        conflicting = tuple(m for m in standing.members if not compatible(market, m, proposal))
        if not conflicting:
            return Submission(Standing((*standing.members, proposal)), Outcome.APPENDED)
        others = tuple(m for m in standing.members if not any(m is c for c in conflicting))
        return self._apply(market, standing, conflicting, others, proposal)

    def run(self, market: Market, proposals: Iterable[Proposal]) -> tuple[Standing, list]:
        """The seed's mechanism on a list of proposals: the final standing, and one
        `Submission` per proposal."""
        standing = Standing.empty()
        log = []
        for proposal in proposals:
            result = self.submit(market, standing, proposal)
            log.append(result)
            standing = result.standing
        return standing, log

    def _apply(
        self,
        market: Market,
        standing: Standing,
        conflicting: tuple[Proposal, ...],
        others: tuple[Proposal, ...],
        proposal: Proposal,
    ) -> Submission:
        holder = conflicting[0] if len(conflicting) == 1 else merge(conflicting)
        shared = Shared(*shared_participants(holder, proposal, by_workload=bool(market.resources)))
        verdict = self.improvement(holder, proposal, shared)
        if verdict.outcome is Outcome.REPLACED:
            return Submission(Standing((*others, proposal)), Outcome.REPLACED, verdict.reason)
        if verdict.outcome is Outcome.REPRICED:
            assert verdict.holder is not None
            repriced = tuple(
                m.with_prices(
                    {t: verdict.holder.payments[t] for t in m.requests},
                    {n: verdict.holder.rewards[n] for n in m.nodes},
                )
                for m in conflicting
            )
            return Submission(Standing((*others, *repriced)), Outcome.REPRICED, verdict.reason)
        return Submission(standing, Outcome.KEPT, verdict.reason)

    def __repr__(self) -> str:
        extra = ", specialization=True" if self.specialization else ""
        return f"{type(self).__name__}({extra.lstrip(', ')})"


# --- the four attempts -----------------------------------------------------------------


class CentralizedMarketMaker(SequentialImprovement):
    """Attempt 1: the maker of the first proposal routes the market; only it can replace."""

    attempt = 1
    title = "centralized market-maker"

    def improvement(self, best: Proposal, challenger: Proposal, shared: Shared) -> Verdict:
        if challenger.maker == best.maker:
            return Verdict(Outcome.REPLACED, "the central market-maker revises its proposal")
        return Verdict(Outcome.KEPT, f"only the central market-maker {best.maker!r} proposes")


class MinimumMargin(SequentialImprovement):
    """Attempt 2: the proposal with the lower margin wins (ties keep the holder)."""

    attempt = 2
    title = "minimum margin"

    def improvement(self, best: Proposal, challenger: Proposal, shared: Shared) -> Verdict:
        if challenger.margin < best.margin:
            return Verdict(Outcome.REPLACED, f"margin {challenger.margin:.6g} < {best.margin:.6g}")
        return Verdict(Outcome.KEPT, f"margin {challenger.margin:.6g} ≥ {best.margin:.6g}")


def strict_improvement(best: Proposal, challenger: Proposal, shared: Shared) -> tuple[bool, str]:
    """Whether the challenger offers every conflicting participant strictly better terms."""
    shared_t, shared_n = shared
    if not shared_t and not shared_n:
        return False, "no conflicting participant"
    for t in sorted(shared_t):
        if not challenger.payments[t] < best.payments[t]:
            return False, f"request {t!r} is not offered a lower price"
    for n in sorted(shared_n):
        if not challenger.rewards[n] > best.rewards[n]:
            return False, f"node {n!r} is not offered a higher reward"
    return True, ""


class ParetoImprovement(SequentialImprovement):
    """Attempt 3: replace iff every conflicting participant strictly prefers the challenger."""

    attempt = 3
    title = "sequential Pareto improvements for conflicts"
    supports_specialization = True
    empty_holder_binds = False

    def improvement(self, best: Proposal, challenger: Proposal, shared: Shared) -> Verdict:
        strict, why = strict_improvement(best, challenger, shared)
        if strict:
            return Verdict(Outcome.REPLACED, "every conflicting participant strictly better off")
        return Verdict(Outcome.KEPT, why)


def improvement_and_slack(
    best: Proposal, challenger: Proposal, shared: Shared
) -> tuple[float, float]:
    """(Δ, ∇) of attempt 4: the challenger's total improvement for the conflicting
    participants, and the slack of the holder's tolerances on its other participants."""
    shared_t, shared_n = shared
    delta = math.fsum(best.payments[t] - challenger.payments[t] for t in shared_t) + math.fsum(
        challenger.rewards[n] - best.rewards[n] for n in shared_n
    )
    nabla = math.fsum(best.request_slack(t) for t in best.requests - shared_t) + math.fsum(
        best.node_slack(n) for n in best.nodes - shared_n
    )
    return delta, nabla


def reprice(
    best: Proposal, challenger: Proposal, shared: Shared, delta: float, nabla: float
) -> Proposal:
    """b re-priced to give every conflicting participant the challenger's terms, paid for by
    the slack of its non-conflicting participants in proportion to each one's slack (Δ and ∇
    as `improvement_and_slack` gives them)."""
    shared_t, shared_n = shared
    share = delta / nabla if nabla > 0 else 0.0
    payments = dict(best.payments)
    rewards = dict(best.rewards)
    assert best.max_payments is not None and best.min_rewards is not None
    for t in best.requests:
        if t in shared_t:
            payments[t] = challenger.payments[t]
        else:
            payments[t] = min(best.max_payments[t], payments[t] + share * best.request_slack(t))
    for n in best.nodes:
        if n in shared_n:
            rewards[n] = challenger.rewards[n]
        else:
            rewards[n] = max(best.min_rewards[n], rewards[n] - share * best.node_slack(n))
    return best.with_prices(payments, rewards)


class ToleranceImprovement(SequentialImprovement):
    """Attempt 4: Pareto improvements with payment tolerances (replace iff strict and ∇ < Δ,
    otherwise re-price the holder when it can match)."""

    attempt = 4
    title = "sequential Pareto improvements with tolerances"
    supports_specialization = True
    empty_holder_binds = False

    def improvement(self, best: Proposal, challenger: Proposal, shared: Shared) -> Verdict:
        strict, why = strict_improvement(best, challenger, shared)
        if not strict:
            return Verdict(Outcome.KEPT, why)
        delta, nabla = improvement_and_slack(best, challenger, shared)
        if nabla < delta:
            return Verdict(Outcome.REPLACED, f"∇ = {nabla:.6g} < Δ = {delta:.6g}")
        return Verdict(
            Outcome.REPRICED,
            f"∇ = {nabla:.6g} ≥ Δ = {delta:.6g}: the holder matches the offer",
            reprice(best, challenger, shared, delta, nabla),
        )


ATTEMPTS: dict[int, type[SequentialImprovement]] = {
    cls.attempt: cls
    for cls in (CentralizedMarketMaker, MinimumMargin, ParetoImprovement, ToleranceImprovement)
}


def mechanism_for(attempt: int, *, specialization: bool = False) -> SequentialImprovement:
    """The sequential-improvement mechanism of seed 001's attempt 1, 2, 3 or 4."""
    if isinstance(attempt, bool) or attempt not in ATTEMPTS:
        raise InvalidParameterError(f"attempt must be one of 1, 2, 3, 4; got {attempt!r}")
    return ATTEMPTS[attempt](specialization=specialization)
