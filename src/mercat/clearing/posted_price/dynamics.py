"""Best-response dynamics of market-makers under the sequential-improvement template.

`run_dynamics` is seed 001's "iterated sequence of best responses": the makers take turns
in a fixed order (one round = one turn each); on its turn a maker sees the current standing
and proposes (or passes); the mechanism processes the proposal (`SequentialImprovement.
submit`). The standing persists from turn to turn. The run stops after a round in which the
standing did not change (no one can improve: converged), when the standing at the end of a
round repeats one seen at the end of an earlier round (the makers decide deterministically,
so the dynamics cycle for ever: `Trace.cycle` holds its first round and its period), or
after `rounds` rounds. Every
turn is recorded (`Step`: round, maker, proposal, outcome, and the standing after it with
its allocation, prices, margin and true welfare).

`settle` then clears the final standing against the true values and costs: a member whose
prices are individually rational for everyone it names clears; otherwise its participants
refuse, nothing of it trades, and its maker pays the penalty γ (seed 001: "the
market-maker who submitted it will face a penalty of γ"). A maker's payoff is the margin of
its members that cleared minus γ per member that failed.

`best_responses` asks, for a standing, what each maker's best response would be: a standing
from which no maker has a profitable proposal is an equilibrium of the dynamics (the seed's
pure Nash equilibria, read for the sequential template with a persisting current best).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mercat.clearing.base import Seed, as_generator
from mercat.clearing.posted_price.makers import MakerView, MarketMaker
from mercat.clearing.posted_price.pricing import Offer
from mercat.clearing.posted_price.proposal import Proposal, Standing
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import (
    Outcome,
    SequentialImprovement,
    mechanism_for,
)
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.market.economics import ir_violations, welfare
from mercat.market.model import Allocation, Market
from mercat.validation import integer, non_negative, positive

DEFAULT_TICK = 0.001
"""The smallest price step a maker uses for a strict improvement or an undercut."""

DEFAULT_PENALTY = 1.0
"""γ: what a maker pays when its cleared proposal is not individually rational."""


@dataclass(frozen=True)
class Step:
    """One turn: who moved, what it proposed, what the mechanism did, the standing after."""

    round: int
    maker: str
    outcome: Outcome
    reason: str
    proposal: Proposal | None
    standing: Standing
    welfare: float  # true W of the standing's allocation

    @property
    def accepted(self) -> bool:
        return self.outcome.accepted

    @property
    def margin(self) -> float:
        return self.standing.margin

    def as_dict(self) -> dict[str, Any]:
        proposal = self.proposal
        return {
            "round": self.round,
            "maker": self.maker,
            "outcome": str(self.outcome),
            "accepted": self.accepted,
            "reason": self.reason,
            "proposal": None
            if proposal is None
            else {
                "allocation": proposal.allocation.as_dict(),
                "payments": dict(proposal.payments),
                "rewards": dict(proposal.rewards),
                "max_payments": dict(proposal.max_payments or {}),
                "min_rewards": dict(proposal.min_rewards or {}),
                "margin": proposal.margin,
            },
            "holders": list(self.standing.holders()),
            "allocation": self.standing.allocation.as_dict(),
            "payments": dict(self.standing.payments),
            "rewards": dict(self.standing.rewards),
            "margin": self.margin,
            "welfare": self.welfare,
        }


@dataclass(frozen=True)
class Settlement:
    """The final standing cleared against the true values and costs."""

    allocation: Allocation
    payments: dict[str, float]
    rewards: dict[str, float]
    payoffs: dict[str, float]  # maker -> margin cleared minus γ per failed member
    failed: tuple[str, ...]  # makers whose member was not individually rational
    reasons: tuple[str, ...]
    welfare: float  # true W of what trades (the members that cleared)


@dataclass(frozen=True)
class Trace:
    """A run of the dynamics."""

    market: Market
    mechanism: SequentialImprovement
    makers: tuple[str, ...]
    strategies: tuple[str, ...]
    tick: float
    steps: tuple[Step, ...]
    converged: bool
    rounds: int
    settlement: Settlement
    milp_solves: int = 0
    cycle: tuple[int, int] | None = None  # (first round of the cycle, period in rounds)
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def standing(self) -> Standing:
        return self.steps[-1].standing if self.steps else Standing.empty()

    @property
    def welfare(self) -> float:
        """The true welfare W of the last proposed standing (0 before any turn)."""
        return self.steps[-1].welfare if self.steps else 0.0

    @property
    def proposals(self) -> int:
        """Proposals the mechanism evaluated (turns that were not passes)."""
        return sum(1 for s in self.steps if s.outcome is not Outcome.PASSED)


def settle(market: Market, standing: Standing, penalty: float = DEFAULT_PENALTY) -> Settlement:
    """Clear the members that are individually rational; the others fail and pay γ."""
    shares: list[tuple[str, str, float]] = []
    payments: dict[str, float] = {}
    rewards: dict[str, float] = {}
    payoffs: dict[str, float] = {}
    failed: list[str] = []
    reasons: list[str] = []
    for member in standing.members:
        violations = ir_violations(market, member.allocation, member.payments, member.rewards)
        payoffs.setdefault(member.maker, 0.0)
        if violations:
            failed.append(member.maker)
            reasons.extend(f"{member.maker}: {v}" for v in violations)
            payoffs[member.maker] -= penalty
            continue
        shares.extend(member.allocation.shares)
        payments.update(member.payments)
        rewards.update(member.rewards)
        payoffs[member.maker] += member.margin
    cleared = Allocation(tuple(shares))
    return Settlement(
        cleared,
        payments,
        rewards,
        payoffs,
        tuple(failed),
        tuple(reasons),
        welfare(market, cleared),
    )


def run_dynamics(
    market: Market,
    makers: Sequence[MarketMaker],
    *,
    attempt: int | SequentialImprovement = 4,
    specialization: bool = False,
    rounds: int = 100,
    tick: float = DEFAULT_TICK,
    penalty: float = DEFAULT_PENALTY,
    seed: Seed = None,
    opening: Sequence[Proposal] = (),
    progress: Callable[[int], None] | None = None,
) -> Trace:
    """Iterate best responses: makers take turns until a round changes nothing (`progress(1)`
    after each round)."""
    if market.divisible:
        raise InvalidMarketError(
            "the posted-price mechanism clears indivisible markets (seed 001's α: T → 2^N)"
        )
    if isinstance(attempt, SequentialImprovement):
        mechanism = attempt
    else:
        mechanism = mechanism_for(attempt, specialization=specialization)
    if not makers:
        raise InvalidParameterError("the dynamics need at least one market-maker")
    rounds = integer("rounds", rounds, minimum=1)
    tick = float(positive("tick", tick))
    penalty = float(non_negative("penalty", penalty))
    ids = tuple(f"mm{k + 1}" for k in range(len(makers)))
    rngs = as_generator(seed).spawn(len(makers))
    shared: dict = {}  # solver state makers with the same beliefs share (MakerView.shared)
    views = [
        MakerView(
            maker_id, maker.beliefs(market, rng), mechanism, Standing.empty(), tick, shared=shared
        )
        for maker_id, maker, rng in zip(ids, makers, rngs, strict=True)
    ]
    standing = Standing.empty()
    steps: list[Step] = []
    welfare_of: dict[Allocation, float] = {}

    def record(round_: int, maker: str, outcome: Outcome, reason: str, proposal) -> None:
        allocation = standing.allocation
        if allocation not in welfare_of:
            welfare_of[allocation] = welfare(market, allocation)
        w = welfare_of[allocation]
        steps.append(Step(round_, maker, outcome, reason, proposal, standing, w))

    for proposal in opening:
        result = mechanism.submit(market, standing, proposal)
        standing = result.standing
        record(0, proposal.maker, result.outcome, result.reason, proposal)

    converged = False
    cycle: tuple[int, int] | None = None
    seen: dict[tuple, int] = {}
    played = 0
    for round_ in range(1, rounds + 1):
        played = round_
        changed = False
        for maker, view in zip(makers, views, strict=True):
            view.standing = standing
            proposal = maker.propose(view)
            if proposal is None:
                record(round_, view.maker, Outcome.PASSED, "", None)
                continue
            result = mechanism.submit(market, standing, proposal)
            changed = changed or result.standing != standing
            standing = result.standing
            record(round_, view.maker, result.outcome, result.reason, proposal)
        if progress is not None:
            progress(1)
        if not changed:
            converged = True
            break
        key = _state_key(standing)
        if key in seen:
            cycle = (seen[key], round_ - seen[key])
            break
        seen[key] = round_

    responders = [v.memory["responder"] for v in views if "responder" in v.memory]
    solves = sum(r.milp_solves + getattr(r, "pool_solves", 0) for r in responders)
    hits = sum(getattr(r, "certified", 0) for r in responders)
    lp_solves = sum(getattr(r, "lp_solves", 0) for r in responders)
    details: dict[str, Any] = {"certified_responses": hits, "lp_solves": lp_solves}
    # Responders with the same beliefs share one challenge model, and so one placement solver.
    placements = {id(p): p for r in responders if (p := getattr(r, "placement", None))}
    if placements:
        details["placement"] = [p.statistics() for p in placements.values()]
    return Trace(
        market=market,
        mechanism=mechanism,
        makers=ids,
        strategies=tuple(m.name for m in makers),
        tick=tick,
        steps=tuple(steps),
        converged=converged,
        rounds=played,
        settlement=settle(market, standing, penalty),
        milp_solves=solves,
        cycle=cycle,
        details=details,
    )


def _state_key(standing: Standing) -> tuple:
    """The standing, prices rounded to 1e-9, as something hashable (for cycle detection)."""
    return tuple(
        (
            m.maker,
            m.allocation.shares,
            tuple((k, round(v, 9)) for k, v in m.payments.items()),
            tuple((k, round(v, 9)) for k, v in m.rewards.items()),
            tuple((k, round(v, 9)) for k, v in (m.max_payments or {}).items()),
            tuple((k, round(v, 9)) for k, v in (m.min_rewards or {}).items()),
        )
        for m in standing.members
    )


def best_responses(
    beliefs: Market,
    standing: Standing,
    mechanism: SequentialImprovement,
    makers: Sequence[str],
    tick: float = DEFAULT_TICK,
) -> dict[str, Offer | None]:
    """Each maker's exact best response to the standing (None: nothing profitable)."""
    return {
        maker: BestResponder(beliefs, mechanism, maker, tick).exact(standing) for maker in makers
    }


def is_equilibrium(
    beliefs: Market,
    standing: Standing,
    mechanism: SequentialImprovement,
    makers: Sequence[str] = ("mm1", "mm2"),
    tick: float = DEFAULT_TICK,
) -> bool:
    """Whether no maker (of perfect information) can profitably move from this standing."""
    offers = best_responses(beliefs, standing, mechanism, makers, tick)
    return all(offer is None for offer in offers.values())


def margin_floor(trace: Trace, after: int = 0) -> float:
    """The smallest standing margin over the steps after the first `after` ones."""
    margins = [s.margin for s in trace.steps[after:] if s.standing]
    return min(margins) if margins else math.nan


__all__ = [
    "DEFAULT_PENALTY",
    "DEFAULT_TICK",
    "Settlement",
    "Step",
    "Trace",
    "best_responses",
    "is_equilibrium",
    "margin_floor",
    "run_dynamics",
    "settle",
]
