"""Welfare, margin, surplus, utilities, individual rationality, budget balance (seed 001).

The extracted seed lost the images that held these formulas; its prose defines each one, and
this module implements that prose (see ../shared/seeds/README.md):

- utility of request t:  u_t = v_t·served(t) - π(t): value minus price for a served request,
  0 for an unserved one that pays nothing (served(t) is 1 or 0 in indivisible markets, the
  served fraction in divisible ones, where the value is linear in the amount served);
- utility of node n:     u_n = φ(n) - cost_n(α): reward minus cost for a used node, 0 for an
  unused one that receives nothing; cost_n(α) = c_n·1[α⁻¹(n) ≠ ∅] + Σ_r unit_cost_n[r]·load_n[r];
- welfare     W(α) = Σ_t v_t·served(t) - Σ_n cost_n(α)  (served values minus used nodes' costs);
- margin      M(π, φ) = Σ_t π(t) - Σ_n φ(n)              (payments minus rewards);
- surplus     S = W - M, which equals Σ_t u_t + Σ_n u_n (the seed's identity; a test holds it);
- individually rational: every u_t ≥ 0 and every u_n ≥ 0;
- budget balanced: M ≥ 0 (the market needs no subsidy); non-extractive: M ≤ 0; zero margin:
  both.

Reading chosen: an unserved request that is charged π(t) > 0 has utility -π(t) (it pays and
gets nothing), so such a payment rule is not individually rational, which is how the seed's
attempt 1 argues ("the market-maker must set t2's payment π(t2) = 0, or else t2 will reject
the offer"); with this reading S = Σ utilities holds for every (α, π, φ).

Every sum here is `math.fsum`, the correctly rounded sum, which does not depend on the order
of its terms: welfare sums over the allocation's served requests and used nodes (sets, whose
order changes with PYTHONHASHSEED), and a plain sum over them gave `mercat clear --json`
outputs that differed in the last bits from one run to the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mercat.market.constraints import is_valid, node_load, served_fraction
from mercat.market.model import Allocation, Clearing, Market

UTILITY_TOL = 1e-9
"""Slack on IR and budget-balance checks, relative to max(1, the amounts involved)."""


def request_value(market: Market, allocation: Allocation, request_id: str) -> float:
    """v_t·served(t): the value request t gets from α."""
    return market.request(request_id).value * served_fraction(market, allocation, request_id)


def node_cost(market: Market, allocation: Allocation, node_id: str) -> float:
    """cost_n(α): the fixed cost if n is used plus its per-unit costs on the load it serves."""
    node = market.node(node_id)
    if not allocation.requests_on(node_id):
        return 0.0
    load = node_load(market, allocation, node_id)
    return node.cost + sum(c * x for c, x in zip(node.unit_costs, load, strict=True))


def welfare(market: Market, allocation: Allocation) -> float:
    """W(α) = Σ_t v_t·served(t) - Σ_n cost_n(α)."""
    values = [request_value(market, allocation, t) for t in allocation.served_requests]
    costs = [-node_cost(market, allocation, n) for n in allocation.used_nodes]
    return math.fsum(values + costs)


def margin(payments: Mapping[str, float], rewards: Mapping[str, float]) -> float:
    """M(π, φ) = Σ_t π(t) - Σ_n φ(n)."""
    return math.fsum([*map(float, payments.values()), *(-float(r) for r in rewards.values())])


def surplus(
    market: Market,
    allocation: Allocation,
    payments: Mapping[str, float],
    rewards: Mapping[str, float],
) -> float:
    """S(α, π, φ) = W(α) - M(π, φ)."""
    return welfare(market, allocation) - margin(payments, rewards)


def request_utility(
    market: Market, allocation: Allocation, payments: Mapping[str, float], request_id: str
) -> float:
    """u_t = v_t·served(t) - π(t)."""
    return request_value(market, allocation, request_id) - float(payments.get(request_id, 0.0))


def node_utility(
    market: Market, allocation: Allocation, rewards: Mapping[str, float], node_id: str
) -> float:
    """u_n = φ(n) - cost_n(α)."""
    return float(rewards.get(node_id, 0.0)) - node_cost(market, allocation, node_id)


def utilities(
    market: Market,
    allocation: Allocation,
    payments: Mapping[str, float],
    rewards: Mapping[str, float],
) -> dict[str, float]:
    """Every participant's utility, by id (requests first, then nodes)."""
    table = {t.id: request_utility(market, allocation, payments, t.id) for t in market.requests}
    table.update({n.id: node_utility(market, allocation, rewards, n.id) for n in market.nodes})
    return table


def ir_violations(
    market: Market,
    allocation: Allocation,
    payments: Mapping[str, float],
    rewards: Mapping[str, float],
    tol: float = UTILITY_TOL,
) -> list[str]:
    """Participants whose utility is negative (beyond tolerance), with their utility."""
    found = []
    for t in market.requests:
        u = request_utility(market, allocation, payments, t.id)
        if u < -tol * max(1.0, t.value):
            found.append(f"request {t.id!r} has utility {u:.6g} < 0")
    for n in market.nodes:
        u = node_utility(market, allocation, rewards, n.id)
        if u < -tol * max(1.0, float(rewards.get(n.id, 0.0))):
            found.append(f"node {n.id!r} has utility {u:.6g} < 0")
    return found


def individually_rational(
    market: Market,
    allocation: Allocation,
    payments: Mapping[str, float],
    rewards: Mapping[str, float],
    tol: float = UTILITY_TOL,
) -> bool:
    """(α, π, φ) is IR: every request and every node has utility ≥ 0."""
    return not ir_violations(market, allocation, payments, rewards, tol)


def _scale(payments: Mapping[str, float], rewards: Mapping[str, float]) -> float:
    return max(1.0, math.fsum(abs(float(v)) for v in payments.values()))


def budget_balanced(
    payments: Mapping[str, float], rewards: Mapping[str, float], tol: float = UTILITY_TOL
) -> bool:
    """M ≥ 0: what requests pay covers what nodes receive."""
    return margin(payments, rewards) >= -tol * _scale(payments, rewards)


def non_extractive(
    payments: Mapping[str, float], rewards: Mapping[str, float], tol: float = UTILITY_TOL
) -> bool:
    """M ≤ 0: the market keeps nothing."""
    return margin(payments, rewards) <= tol * _scale(payments, rewards)


def zero_margin_prices(
    market: Market, allocation: Allocation
) -> tuple[dict[str, float], dict[str, float]]:
    """A zero-margin payment rule that is IR for any α with W(α) ≥ 0 (seed 001's claim that
    one always exists), splitting the welfare among requests in proportion to their value.

    Nodes receive exactly their cost; request t pays v_t·served(t)·(1 - W/V), where V is the
    total served value, so Σπ = V - W = Σ costs (zero margin) and u_t = v_t·served(t)·W/V ≥ 0.
    """
    values = {t: request_value(market, allocation, t) for t in sorted(allocation.served_requests)}
    rewards = {n: node_cost(market, allocation, n) for n in sorted(allocation.used_nodes)}
    total_value = math.fsum(values.values())
    if total_value <= 0:
        return {t: 0.0 for t in values}, rewards
    keep = math.fsum([total_value, *(-r for r in rewards.values())]) / total_value  # W / V
    return {t: v * (1.0 - keep) for t, v in values.items()}, rewards


@dataclass(frozen=True)
class ClearingSummary:
    """The numbers and checks the CLI and the contract tests report for one clearing."""

    welfare: float
    margin: float
    surplus: float
    valid: bool
    validity_reasons: tuple[str, ...]
    individually_rational: bool
    ir_violations: tuple[str, ...]
    budget_balanced: bool
    non_extractive: bool
    served_requests: int
    used_nodes: int

    def as_dict(self) -> dict[str, object]:
        return {
            "welfare": self.welfare,
            "margin": self.margin,
            "surplus": self.surplus,
            "valid": self.valid,
            "validity_reasons": list(self.validity_reasons),
            "individually_rational": self.individually_rational,
            "ir_violations": list(self.ir_violations),
            "budget_balanced": self.budget_balanced,
            "non_extractive": self.non_extractive,
            "served_requests": self.served_requests,
            "used_nodes": self.used_nodes,
        }


def summarize(market: Market, clearing: Clearing) -> ClearingSummary:
    """Welfare, margin, surplus and the checks (validity, IR, budget balance) of a clearing."""
    alloc, pay, rew = clearing.allocation, clearing.payments, clearing.rewards
    validity = is_valid(market, alloc)
    m = margin(pay, rew)
    if _unknown_ids(market, alloc):  # nothing to value: the reasons say which ids are wrong
        w, violations = float("nan"), ()
    else:
        w, violations = welfare(market, alloc), tuple(ir_violations(market, alloc, pay, rew))
    return ClearingSummary(
        welfare=w,
        margin=m,
        surplus=w - m,
        valid=bool(validity),
        validity_reasons=validity.reasons,
        individually_rational=not violations,
        ir_violations=violations,
        budget_balanced=budget_balanced(pay, rew),
        non_extractive=non_extractive(pay, rew),
        served_requests=len(alloc.served_requests),
        used_nodes=len(alloc.used_nodes),
    )


def _unknown_ids(market: Market, allocation: Allocation) -> bool:
    return any(
        t not in market.request_by_id or n not in market.node_by_id for t, n, _ in allocation.shares
    )
