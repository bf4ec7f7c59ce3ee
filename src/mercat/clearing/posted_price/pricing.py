"""The most profitable winning prices for one allocation: a market-maker's pricing step.

Given what a maker believes (values v̂ and costs ĉ: the truth for a perfect-information
maker), the current standing and the mechanism's rule, `offer_for(α)` returns the proposal on
α that wins with the largest margin, or None when no proposal on α can win. A best response
is the best offer over α ∈ V (`mercat.clearing.posted_price.response` finds it with HiGHS,
`mercat.clearing.posted_price.reference` by enumeration).

Prices move in steps of at least `tick` where the rule asks for a strict inequality (the seed's
"just a tad less"): without a smallest step the supremum is never attained.

- Opening (no current best, or an empty one in attempts 3-4) and attempt 1's central maker:
  extract everything: π(t) = v̂_t, φ(n) = ĉ_n(α), margin Ŵ(α) (seed 001, attempt 1's claim).
- Attempt 2: margin min(Ŵ(α), M_b - tick); nodes get their cost, requests share the rest of
  the welfare in proportion to their value.
- Attempts 3 and 4, against the holder b (with specialization: the members α conflicts with,
  as one holder; α compatible with every member is appended at full extraction). Only the
  shared participants C = C_T ∪ C_N constrain the prices; everyone else gives up everything.
  (In a market with resources a node is shared only if it serves the same requests under
  both: the seed's one-instantiation-per-workload reading, see `posted_price_template`.)
  Each shared participant p needs an improvement e_p = max(tick, -g_p), where g_p is what p
  would keep on b's terms (v̂_t - π_b(t), or φ_b(n) - ĉ_n(α)): at least a tick (strict
  improvement), and enough to make α's price individually rational. Attempt 3 needs nothing
  more: Δ = Σ e_p. Attempt 4 needs Δ > ∇: Δ = max(Σ e_p, ∇ + tick), the surplus over Σ e_p
  spread evenly over C. So π(t) = π_b(t) - e_t - extra/|C|, φ(n) = φ_b(n) + e_n + extra/|C|
  and the margin is
      M(α) = Σ_{T_α∖C_T} v̂ + Σ_{C_T} π_b - Σ_{N_α∖C_N} ĉ_n(α) - Σ_{C_N} φ_b - Δ.
  Attempt-4 tolerances are the maker's beliefs (π̄ = v̂, φ̲ = ĉ): the widest individually
  rational ones, which make the proposal hardest to displace (the appendix's construction).

`gain` is what the maker earns by the offer: its margin minus the margins of the maker's own
members that the offer would displace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mercat.clearing.posted_price.proposal import Interference, Proposal, Standing, merge
from mercat.clearing.posted_price.template import SequentialImprovement
from mercat.errors import SolverError
from mercat.market.economics import node_cost, zero_margin_prices
from mercat.market.model import Allocation, Market


@dataclass(frozen=True)
class Offer:
    """A winning proposal on one allocation and what it earns its maker."""

    proposal: Proposal
    kind: str  # "open", "revise" (attempt 1), "undercut" (attempt 2), "challenge", "append"
    gain: float

    @property
    def margin(self) -> float:
        return self.proposal.margin


def believed_terms(
    beliefs: Market, allocation: Allocation
) -> tuple[dict[str, float], dict[str, float]]:
    """v̂_t of every served request and ĉ_n(α) of every used node, as the maker believes."""
    values = {t: beliefs.request(t).value for t in sorted(allocation.served_requests)}
    costs = {n: node_cost(beliefs, allocation, n) for n in sorted(allocation.used_nodes)}
    return values, costs


def zero_margin_proposal(
    market: Market, allocation: Allocation, maker: str = "mm1", *, tolerances: bool = False
) -> Proposal:
    """α at zero-margin IR prices (`economics.zero_margin_prices`); with `tolerances`, the
    holder states the true values and costs as its tolerances (attempt 4's truthful holder)."""
    payments, rewards = zero_margin_prices(market, allocation)
    if not tolerances:
        return Proposal(maker, allocation, payments, rewards)
    return Proposal(maker, allocation, payments, rewards, *believed_terms(market, allocation))


def conflicts_with(allocation: Allocation, member: Proposal, interference: Interference) -> bool:
    """Whether an allocation cannot run beside a standing member (`compatible`'s negation)."""
    if allocation.served_requests & member.requests or allocation.used_nodes & member.nodes:
        return True
    return interference.between(allocation, member.allocation)


def _full_extraction(
    maker: str, allocation: Allocation, values: dict, costs: dict, tolerances: bool
) -> Proposal:
    if tolerances:
        return Proposal(maker, allocation, values, costs, values, costs)
    return Proposal(maker, allocation, values, costs)


def _with_margin(maker: str, allocation: Allocation, values: dict, costs: dict, target: float):
    """Prices on α with margin `target` ≤ Ŵ(α): nodes get their cost, requests give up the
    rest of the welfare in proportion to their value (nodes share it if no one is served)."""
    welfare = math.fsum(values.values()) - math.fsum(costs.values())
    give = welfare - target
    total_value = math.fsum(values.values())
    payments, rewards = dict(values), dict(costs)
    if total_value > 0:
        payments = {t: v - give * v / total_value for t, v in values.items()}
    elif costs:
        rewards = {n: c + give / len(costs) for n, c in costs.items()}
    return Proposal(maker, allocation, payments, rewards)


def as_solved(offer: Offer | None, expected: float, solver: str) -> Offer:
    """`offer`, the pricing of the allocation a solver chose, which must earn what the solver
    said it earns (`expected`, to 1e-6); otherwise SolverError names `solver`: the MILPs only
    choose, and `offer_for` is what every answer is held to."""
    if offer is None or not math.isclose(offer.gain, expected, rel_tol=1e-6, abs_tol=1e-6):
        got = "no winning offer" if offer is None else f"gain {offer.gain:.9g}"
        raise SolverError(f"{solver} and pricing disagree: {expected:.9g} against {got}")
    return offer


def offer_for(
    beliefs: Market,
    allocation: Allocation,
    standing: Standing,
    mechanism: SequentialImprovement,
    maker: str,
    tick: float,
    interference: Interference | None = None,
) -> Offer | None:
    """The winning proposal on `allocation` with the largest margin (None if none wins)."""
    values, costs = believed_terms(beliefs, allocation)
    tolerances = mechanism.attempt == 4
    if not standing or (not mechanism.empty_holder_binds and not standing.serves_anyone):
        proposal = _full_extraction(maker, allocation, values, costs, tolerances)
        return Offer(proposal, "open", proposal.margin - standing.margin_of(maker))

    if mechanism.attempt == 1:
        (holder,) = standing.members
        if holder.maker != maker:
            return None
        proposal = _full_extraction(maker, allocation, values, costs, tolerances)
        return Offer(proposal, "revise", proposal.margin - holder.margin)

    if mechanism.attempt == 2:
        (holder,) = standing.members
        welfare = math.fsum(values.values()) - math.fsum(costs.values())
        target = min(welfare, holder.margin - tick)
        proposal = _with_margin(maker, allocation, values, costs, target)
        if not proposal.margin < holder.margin:
            return None  # α∅ has margin 0 whatever the target: it cannot undercut M_b ≤ 0
        own = holder.margin if holder.maker == maker else 0.0
        return Offer(proposal, "undercut", proposal.margin - own)

    if mechanism.specialization:
        table = Interference.of(beliefs) if interference is None else interference
        group = tuple(m for m in standing.members if conflicts_with(allocation, m, table))
        if not group:
            proposal = _full_extraction(maker, allocation, values, costs, tolerances)
            return Offer(proposal, "append", proposal.margin)
        holder = group[0] if len(group) == 1 else merge(group)
    else:
        group = standing.members
        (holder,) = group
    by_workload = bool(beliefs.resources)
    return _challenge(
        maker, allocation, values, costs, holder, group, mechanism.attempt, tick, by_workload
    )


def _challenge(
    maker: str,
    allocation: Allocation,
    values: dict[str, float],
    costs: dict[str, float],
    holder: Proposal,
    group: tuple[Proposal, ...],
    attempt: int,
    tick: float,
    by_workload: bool,
) -> Offer | None:
    shared_t = sorted(allocation.served_requests & holder.requests)
    shared_n = sorted(
        n
        for n in allocation.used_nodes & holder.nodes
        if not by_workload or allocation.requests_on(n) == holder.allocation.requests_on(n)
    )
    if not shared_t and not shared_n:
        return None  # no conflicting participant: the holder stays whatever α offers
    need = {t: max(tick, holder.payments[t] - values[t]) for t in shared_t}
    need.update({n: max(tick, costs[n] - holder.rewards[n]) for n in shared_n})
    total_need = math.fsum(need.values())
    delta = total_need
    if attempt == 4:
        nabla = math.fsum(
            holder.request_slack(t) for t in holder.requests - set(shared_t)
        ) + math.fsum(holder.node_slack(n) for n in holder.nodes - set(shared_n))
        delta = max(total_need, nabla + tick)
    extra = (delta - total_need) / len(need)
    payments, rewards = dict(values), dict(costs)
    for t in shared_t:
        payments[t] = min(values[t], holder.payments[t] - need[t] - extra)
    for n in shared_n:
        rewards[n] = max(costs[n], holder.rewards[n] + need[n] + extra)
    if attempt == 4:
        proposal = Proposal(maker, allocation, payments, rewards, values, costs)
    else:
        proposal = Proposal(maker, allocation, payments, rewards)
    own = math.fsum(m.margin for m in group if m.maker == maker)
    return Offer(proposal, "challenge", proposal.margin - own)
