"""`double-auction`: seed 003 §5.2.1, sorted water-filling with a trade-reduction price rule.

Users bid a value per unit of bandwidth b_i and want d_i units; providers ask a cost per unit
c_j and offer K_j units. The seed builds on STAR (Zheng et al., its ref. [16]), a McAfee-style
double auction; the rule implemented here, in that spirit, is:

1. Order users by decreasing bid and providers by increasing cost (ties: lower index first).
   Users and providers with zero demand or capacity take no part.
2. Efficient water-filling: take the users in order; fill each one's demand from the
   cheapest providers with spare capacity whose cost is at most the user's bid. Stop at the
   first user who gets nothing. Call u* the last user who got anything (the marginal user)
   and l* the provider of the last unit traded (the marginal provider); b_{u*} ≥ c_{l*}
   because that unit traded.
3. Trade reduction: u* and l* are excluded. The users ranked before u* (total demand D) trade
   with the providers ranked before l* (total capacity K), Q = min(D, K) units. Rationing
   is proportional, never by rank: if D ≤ K each of these users gets its full demand and
   each of these providers supplies the share K_j·D/K; otherwise each provider supplies K_j
   and each user gets d_i·K/D.
4. Prices: users pay p_B = b_{u*} per unit, providers receive p_S = c_{l*} per unit.
5. The units are matched by water-filling again: users in bid order fill providers in cost
   order (this only decides who serves whom; amounts are fixed by step 3).

Properties (the contract tests check them on generated markets, and a statistical test
samples misreports):
- individually rational: a trading user has b_i ≥ b_{u*} = p_B; a trading provider has
  c_j ≤ c_{l*} = p_S;
- budget balanced: margin = (p_B - p_S)·Q ≥ 0;
- truthful in the per-unit bids and costs (demands and capacities are taken as reported):
  a trader's amount depends only on the set of traders (proportional rationing) and its
  price on the excluded marginal bid, which its own bid cannot move while it trades;
  a non-trader who bids its way in meets a marginal bid at least its true value (cost at most
  its true cost), so it gains nothing. Proportional rationing is what makes this hold: with
  rationing by rank, a rationed user could overbid to move up and buy more at the same price.
- not welfare-maximising: the marginal user and provider (and any unmatched capacity) are
  given up; `Clearing.bound` holds the efficient welfare of step 2, which is the optimum
  for these markets (one resource, linear values and costs, no other constraints), and
  `gap` the relative loss.

The fast path (`trade_reduction`) is numpy sorting and cumulative sums, O(n log n); its
readable twin is `mercat.clearing.double_auction_reference.trade_reduction_reference`, and
tests hold them to the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mercat.clearing.base import Mechanism, Property, Seed
from mercat.errors import InvalidMarketError
from mercat.model import Allocation, Clearing, Market, relative_gap


@dataclass(frozen=True)
class TradeReduction:
    """The outcome on arrays (indices are positions in the input arrays).

    `user_amount[i]` units go to user i, `provider_amount[j]` come from provider j; the plan
    lists who serves whom (`plan_users[k]` gets `plan_amounts[k]` from `plan_providers[k]`).
    Prices are NaN and marginal indices -1 when nothing trades.
    """

    user_amount: np.ndarray
    provider_amount: np.ndarray
    buyer_price: float
    seller_price: float
    marginal_user: int
    marginal_provider: int
    efficient_quantity: float
    efficient_welfare: float
    traded_quantity: float
    welfare: float
    plan_users: np.ndarray
    plan_providers: np.ndarray
    plan_amounts: np.ndarray

    @property
    def margin(self) -> float:
        """(p_B - p_S)·Q: what users pay minus what providers receive."""
        if self.traded_quantity == 0:
            return 0.0
        return (self.buyer_price - self.seller_price) * self.traded_quantity


def no_trade(
    n: int,
    m: int,
    *,
    marginal_user: int = -1,
    marginal_provider: int = -1,
    efficient_quantity: float = 0.0,
    efficient_welfare: float = 0.0,
    buyer_price: float = float("nan"),
    seller_price: float = float("nan"),
) -> TradeReduction:
    empty_i = np.zeros(0, dtype=np.int64)
    return TradeReduction(
        user_amount=np.zeros(n),
        provider_amount=np.zeros(m),
        buyer_price=buyer_price,
        seller_price=seller_price,
        marginal_user=marginal_user,
        marginal_provider=marginal_provider,
        efficient_quantity=efficient_quantity,
        efficient_welfare=efficient_welfare,
        traded_quantity=0.0,
        welfare=0.0,
        plan_users=empty_i,
        plan_providers=empty_i,
        plan_amounts=np.zeros(0),
    )


def check_arrays(
    bids: np.ndarray, demands: np.ndarray, costs: np.ndarray, capacities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float arrays of matching shapes, finite, demands/capacities/costs ≥ 0."""
    arrays = [np.asarray(a, dtype=float) for a in (bids, demands, costs, capacities)]
    b, d, c, k = arrays
    if b.ndim != 1 or d.shape != b.shape:
        raise InvalidMarketError("bids and demands must be 1-d arrays of one length")
    if c.ndim != 1 or k.shape != c.shape:
        raise InvalidMarketError("costs and capacities must be 1-d arrays of one length")
    for name, a in zip(("bids", "demands", "costs", "capacities"), arrays, strict=True):
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise InvalidMarketError(f"{name} must be finite and >= 0")
    return b, d, c, k


def trade_reduction(
    bids: np.ndarray, demands: np.ndarray, costs: np.ndarray, capacities: np.ndarray
) -> TradeReduction:
    """The rule of the module docstring, vectorised (sorting and cumulative sums)."""
    b, d, c, k = check_arrays(bids, demands, costs, capacities)
    n, m = len(b), len(c)
    active_users = np.flatnonzero(d > 0)
    active_providers = np.flatnonzero(k > 0)
    user_order = active_users[np.argsort(-b[active_users], kind="stable")]
    provider_order = active_providers[np.argsort(c[active_providers], kind="stable")]
    if len(user_order) == 0 or len(provider_order) == 0:
        return no_trade(n, m)
    B, D = b[user_order], d[user_order]
    C, K = c[provider_order], k[provider_order]
    demand_end = np.cumsum(D)
    demand_start = np.concatenate(([0.0], demand_end[:-1]))
    supply_end = np.cumsum(K)

    # Step 2: user i trades iff supply remains at its first unit and the provider selling
    # that unit (the one whose range [end_{j-1}, end_j) holds it) costs at most b_i. Bids
    # fall and that provider's cost rises along the order, so traders form a prefix.
    at_start = np.searchsorted(supply_end, demand_start, side="right")
    inside = at_start < len(K)
    trades = inside & (C[np.minimum(at_start, len(K) - 1)] <= B)
    first_out = int(np.argmin(trades)) if not trades.all() else len(trades)
    if first_out == 0:
        return no_trade(n, m)
    u = first_out - 1  # the marginal user, in sorted order
    affordable = int(np.searchsorted(C, B[u], side="right"))  # providers with c_j ≤ b_{u*}
    q_eff = min(float(demand_end[u]), float(supply_end[affordable - 1]))
    l = int(np.searchsorted(supply_end, q_eff, side="left"))  # noqa: E741 - the seed's l*
    supply_start_l = float(supply_end[l - 1]) if l > 0 else 0.0
    efficient_welfare = (
        float(B[:u] @ D[:u])
        + float(B[u]) * (q_eff - float(demand_start[u]))
        - float(C[:l] @ K[:l])
        - float(C[l]) * (q_eff - supply_start_l)
    )
    p_b, p_s = float(B[u]), float(C[l])
    marginals = {
        "marginal_user": int(user_order[u]),
        "marginal_provider": int(provider_order[l]),
        "efficient_quantity": q_eff,
        "efficient_welfare": efficient_welfare,
        "buyer_price": p_b,
        "seller_price": p_s,
    }

    # Step 3: trade reduction with proportional rationing.
    total_demand = float(demand_start[u])  # users ranked before u*
    total_supply = supply_start_l  # providers ranked before l*
    if total_demand <= 0 or total_supply <= 0:
        return no_trade(n, m, **marginals)
    if total_demand <= total_supply:
        x = D[:u].copy()
        y = K[:l] * (total_demand / total_supply)
        traded = total_demand
    else:
        x = D[:u] * (total_supply / total_demand)
        y = K[:l].copy()
        traded = total_supply

    # Step 5: water-fill x (bid order) into y (cost order). User i covers [xs_i, xe_i);
    # provider j covers [ys_j, ye_j); each overlap is one line of the plan.
    x_end = np.cumsum(x)
    x_start = np.concatenate(([0.0], x_end[:-1]))
    y_end = np.cumsum(y)
    y_start = np.concatenate(([0.0], y_end[:-1]))
    y_end_open = y_end.copy()
    y_end_open[-1] = np.inf  # rounding never pushes the last units out of the last provider
    first = np.minimum(np.searchsorted(y_end, x_start, side="right"), l - 1)
    last = np.minimum(np.searchsorted(y_end, x_end, side="left"), l - 1)
    count = np.maximum(last - first + 1, 1)
    rows = np.repeat(np.arange(u), count)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    cols = first[rows] + offset
    amount = np.minimum(x_end[rows], y_end_open[cols]) - np.maximum(x_start[rows], y_start[cols])
    keep = amount > 0
    rows, cols, amount = rows[keep], cols[keep], amount[keep]

    user_amount = np.zeros(n)
    user_amount[user_order[:u]] = x
    provider_amount = np.zeros(m)
    provider_amount[provider_order[:l]] = y
    welfare = float(B[:u] @ x) - float(C[:l] @ y)
    return TradeReduction(
        user_amount=user_amount,
        provider_amount=provider_amount,
        traded_quantity=traded,
        welfare=welfare,
        plan_users=user_order[:u][rows],
        plan_providers=provider_order[:l][cols],
        plan_amounts=amount,
        **marginals,
    )


class DoubleAuction(Mechanism):
    """Seed 003's double auction: sorted water-filling with McAfee-style trade reduction."""

    name = "double-auction"
    summary = "seed 003 §5.2.1: sorted water-filling, trade reduction; IR, budget balanced"
    properties = frozenset(
        {Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED, Property.TRUTHFUL}
    )

    def check_market(self, market: Market) -> None:
        problems = []
        if not market.divisible:
            problems.append("the market must be divisible")
        if len(market.resources) != 1:
            problems.append(f"exactly one resource is needed, got {list(market.resources)}")
        if market.conflicts:
            problems.append("conflicts are not supported")
        picky = [t.id for t in market.requests if t.capabilities]
        if picky:
            problems.append(f"requests may not need capabilities ({picky[:3]} do)")
        fixed = [n.id for n in market.nodes if n.cost > 0]
        if fixed:
            problems.append(f"nodes may have per-unit costs only ({fixed[:3]} have a fixed cost)")
        if problems:
            raise InvalidMarketError("double-auction: " + "; ".join(problems))

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        demands = np.array([t.demand[0] for t in market.requests], dtype=float)
        values = np.array([t.value for t in market.requests], dtype=float)
        bids = np.divide(values, demands, out=np.zeros_like(values), where=demands > 0)
        costs = np.array([n.unit_costs[0] for n in market.nodes], dtype=float)
        capacities = np.array([n.capacity[0] for n in market.nodes], dtype=float)
        # Unlimited capacity: no provider can sell more than all users want.
        capacities = np.minimum(capacities, float(demands.sum()))
        outcome = trade_reduction(bids, demands, costs, capacities)
        return clearing_from(market, outcome, self.name)


def clearing_from(market: Market, outcome: TradeReduction, mechanism: str) -> Clearing:
    """The `Clearing` of a `TradeReduction` on `market` (shares are fractions of demand)."""
    requests, nodes = market.requests, market.nodes
    shares = tuple(
        (requests[i].id, nodes[j].id, float(a) / requests[i].demand[0])
        for i, j, a in zip(
            outcome.plan_users.tolist(),
            outcome.plan_providers.tolist(),
            outcome.plan_amounts.tolist(),
            strict=True,
        )
    )
    traded_users = np.flatnonzero(outcome.user_amount > 0)
    traded_providers = np.flatnonzero(outcome.provider_amount > 0)
    payments = {
        requests[i].id: outcome.buyer_price * float(outcome.user_amount[i]) for i in traded_users
    }
    rewards = {
        nodes[j].id: outcome.seller_price * float(outcome.provider_amount[j])
        for j in traded_providers
    }
    bound = outcome.efficient_welfare
    gap = relative_gap(bound, outcome.welfare)
    return Clearing(
        mechanism=mechanism,
        allocation=Allocation(shares),
        payments=payments,
        rewards=rewards,
        bound=bound,
        gap=gap,
        proven=gap <= 1e-12,
        diagnostics={
            "buyer_price": outcome.buyer_price,
            "seller_price": outcome.seller_price,
            "marginal_user": (
                requests[outcome.marginal_user].id if outcome.marginal_user >= 0 else None
            ),
            "marginal_provider": (
                nodes[outcome.marginal_provider].id if outcome.marginal_provider >= 0 else None
            ),
            "efficient_quantity": outcome.efficient_quantity,
            "traded_quantity": outcome.traded_quantity,
            "efficient_welfare": outcome.efficient_welfare,
            "welfare": outcome.welfare,
        },
    )
