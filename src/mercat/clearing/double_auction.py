"""`double-auction`: seed 003 §5.2.1, sorted water-filling with a trade-reduction price rule.

Users bid a value per unit of bandwidth b_i and want d_i units; providers ask a cost per unit
c_j and offer K_j units. The seed builds on STAR (Zheng et al., its ref. [16]), a McAfee-style
double auction; the rule implemented here, in that spirit, is:

1. Order users by decreasing bid and providers by increasing cost. Ties go to the lower
   index by default (`tie_break="index"`), or to a uniformly random priority
   (`tie_break="random"`: a permutation drawn from the clearing's seed, which the
   distributed auctioneer takes from its common coin). Users and providers with zero
   demand or capacity take no part in the trade (a request of zero demand that is worth
   something is served in full, for nothing: it uses no unit of anyone's capacity).
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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mercat.clearing.base import Mechanism, Property, Seed, as_generator
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.market.model import Allocation, Clearing, Market, relative_gap


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
    """Float arrays of matching shapes, finite and ≥ 0."""
    arrays = [np.asarray(a, dtype=float) for a in (bids, demands, costs, capacities)]
    b, d, c, k = arrays
    if b.ndim != 1 or d.shape != b.shape:
        raise InvalidMarketError("bids and demands must be 1-d arrays of one length")
    if c.ndim != 1 or k.shape != c.shape:
        raise InvalidMarketError("costs and capacities must be 1-d arrays of one length")
    for name, a in zip(("bids", "demands", "costs", "capacities"), arrays, strict=True):
        # min and max reduce without temporaries; NaN fails the comparisons.
        if a.size and not (a.min() >= 0 and a.max() < np.inf):
            raise InvalidMarketError(f"{name} must be finite and >= 0")
    return b, d, c, k


def ranking(
    keys: np.ndarray, active: np.ndarray | None = None, priority: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the active entries (all if None) by increasing key; ties by `priority`
    (lower first; a permutation of the indices), or by index if it is None.

    A stable sort of 10^6 floats costs about four times numpy's default introsort, and ties
    are rare among real-valued bids; so sort unstably and re-sort only the runs of equal
    keys by their tie-breaker, which (for the index) gives exactly a stable sort's order."""
    if active is None:
        order = np.argsort(keys)
    else:
        index = np.flatnonzero(active)
        order = index[np.argsort(keys[index])]
    sorted_keys = keys[order]
    ties = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if ties.size:
        members = np.union1d(ties, ties + 1)  # positions inside runs of equal keys
        new_run = np.ones(len(members), dtype=bool)
        new_run[1:] = (members[1:] != members[:-1] + 1) | (
            sorted_keys[members[1:]] != sorted_keys[members[:-1]]
        )
        run = np.cumsum(new_run)
        tied = order[members]
        tie_key = tied if priority is None else priority[tied]
        order[members] = tied[np.lexsort((tie_key, run))]
    return order


def _first_non_trader(
    B: np.ndarray, demand_end: np.ndarray, C: np.ndarray, supply_end: np.ndarray
) -> int:
    """Step 2's prefix length: users (sorted) trade while supply remains at their first unit
    and the provider selling it costs at most their bid.

    The users whose first unit falls in provider j's range [S_{j-1}, S_j) form a block of
    consecutive ranks; inside a block bids fall while the cost is fixed, so one binary
    search per provider finds where trading stops: O(m log n) instead of a pass over n."""
    n = len(B)
    start = 0  # the first user of the current block
    for j in range(len(C)):
        # Users whose first unit lies before S_j: user i's first unit is at demand_end[i-1].
        end = min(n, int(np.searchsorted(demand_end, supply_end[j], side="left")) + 1)
        if end <= start:
            continue
        if B[end - 1] >= C[j]:
            start = end
            continue
        # First user in [start, end) whose bid is below c_j: negated bids rise along the
        # ranks, and side="right" keeps bids equal to c_j trading.
        return int(np.searchsorted(-B[start:end], -C[j], side="right")) + start
    return start  # supply exhausted at `start`: later users find nothing left


def check_priority(priority: np.ndarray | None, n: int, who: str) -> np.ndarray | None:
    """None, or `priority` as an int64 array that is a permutation of range(n)."""
    if priority is None:
        return None
    p = np.asarray(priority)
    if p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
        raise InvalidMarketError(f"{who} priority must be {n} integers, got shape {p.shape}")
    if not np.array_equal(np.sort(p), np.arange(n)):
        raise InvalidMarketError(f"{who} priority must be a permutation of 0..{n - 1}")
    return p.astype(np.int64, copy=False)


def random_priorities(n_users: int, n_providers: int, seed: Seed) -> dict[str, np.ndarray]:
    """`trade_reduction`'s tie-breakers for `tie_break="random"`: a uniform permutation of
    the users, then one of the providers, both from one generator seeded by `seed`."""
    rng = as_generator(seed)
    return {
        "user_priority": rng.permutation(n_users),
        "provider_priority": rng.permutation(n_providers),
    }


def trade_reduction(
    bids: np.ndarray,
    demands: np.ndarray,
    costs: np.ndarray,
    capacities: np.ndarray,
    *,
    user_priority: np.ndarray | None = None,
    provider_priority: np.ndarray | None = None,
) -> TradeReduction:
    """The rule of the module docstring, vectorised (sorting and cumulative sums). Equal
    bids (costs) are ordered by `user_priority` (`provider_priority`), lower first, or by
    index where None."""
    b, d, c, k = check_arrays(bids, demands, costs, capacities)
    n, m = len(b), len(c)
    user_priority = check_priority(user_priority, n, "user")
    provider_priority = check_priority(provider_priority, m, "provider")
    user_order = ranking(-b, None if d.size and d.min() > 0 else d > 0, user_priority)
    provider_order = ranking(c, k > 0, provider_priority)
    if len(user_order) == 0 or len(provider_order) == 0:
        return no_trade(n, m)
    B, D = b[user_order], d[user_order]
    C, K = c[provider_order], k[provider_order]
    demand_end = np.cumsum(D)
    supply_end = np.cumsum(K)

    # Step 2: the efficient water-filling's traders form a prefix of the ranking.
    first_out = _first_non_trader(B, demand_end, C, supply_end)
    if first_out == 0:
        return no_trade(n, m)
    u = first_out - 1  # the marginal user, in sorted order
    start_u = float(demand_end[u - 1]) if u > 0 else 0.0
    affordable = int(np.searchsorted(C, B[u], side="right"))  # providers with c_j ≤ b_{u*}
    q_eff = min(float(demand_end[u]), float(supply_end[affordable - 1]))
    l = int(np.searchsorted(supply_end, q_eff, side="left"))  # noqa: E741 - the seed's l*
    supply_start_l = float(supply_end[l - 1]) if l > 0 else 0.0
    efficient_welfare = (
        float(B[:u] @ D[:u])
        + float(B[u]) * (q_eff - start_u)
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
    total_demand = start_u  # users ranked before u*
    total_supply = supply_start_l  # providers ranked before l*
    if total_demand <= 0 or total_supply <= 0:
        return no_trade(n, m, **marginals)
    if total_demand <= total_supply:
        x, x_end = D[:u], demand_end[:u]  # whole demands: reuse the sums already taken
        y = K[:l] * (total_demand / total_supply)
        traded = total_demand
    else:
        x = D[:u] * (total_supply / total_demand)
        x_end = np.cumsum(x)
        y = K[:l].copy()
        traded = total_supply
    y_end = np.cumsum(y)

    # Step 5: water-fill x (bid order) into y (cost order). User i covers [x_end[i-1],
    # x_end[i]); provider j covers [y_end[j-1], y_end[j]). Users whose range starts in
    # provider j's range form a block; each internal boundary y_end[j] that falls strictly
    # inside a user's range splits that user, adding one line for provider j+1.
    cut = np.minimum(np.searchsorted(x_end, y_end[:-1], side="left") + 1, u)
    block = np.diff(np.concatenate(([0], cut, [u])))
    provider_of = np.repeat(np.arange(l), block)  # provider where each user's range starts
    amounts = x.copy()
    rows, cols, extra = [], [], []
    for j, y_cut in enumerate(y_end[:-1].tolist()):
        i = int(cut[j]) - 1  # the user whose range holds this boundary (if any)
        if i < 0 or i >= u:
            continue
        i_start = float(x_end[i - 1]) if i > 0 else 0.0
        if not (i_start < y_cut < float(x_end[i])):
            continue
        if provider_of[i] == j:  # the user's first piece ends at this boundary
            amounts[i] = y_cut - i_start
        rest = min(float(x_end[i]), float(y_end[j + 1]) if j + 1 < l - 1 else np.inf) - y_cut
        rows.append(i)
        cols.append(j + 1)
        extra.append(rest)

    user_amount = np.zeros(n)
    user_amount[user_order[:u]] = x
    provider_amount = np.zeros(m)
    provider_amount[provider_order[:l]] = y
    welfare = float(B[:u] @ x) - float(C[:l] @ y)
    rows_a = np.asarray(rows, dtype=np.int64)
    return TradeReduction(
        user_amount=user_amount,
        provider_amount=provider_amount,
        traded_quantity=traded,
        welfare=welfare,
        plan_users=np.concatenate((user_order[:u], user_order[rows_a])),
        plan_providers=np.concatenate(
            (provider_order[provider_of], provider_order[np.asarray(cols, dtype=np.int64)])
        ),
        plan_amounts=np.concatenate((amounts, np.asarray(extra, dtype=float))),
        **marginals,
    )


class DoubleAuction(Mechanism):
    """Seed 003's double auction: sorted water-filling with McAfee-style trade reduction."""

    name = "double-auction"
    divisible = True
    margin_holder = "pool"
    summary = "seed 003 §5.2.1: sorted water-filling, trade reduction; IR, budget balanced"
    properties = frozenset(
        {Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED, Property.TRUTHFUL}
    )
    TIE_BREAKS = ("index", "random")

    def __init__(self, tie_break: str = "index") -> None:
        """`tie_break`: who goes first among equal bids (costs): "index", the request
        (node) listed first; "random", a uniformly random order drawn from `clear`'s seed,
        so that no bidder is favoured by its position (truthfulness is kept: the order does
        not depend on the bids)."""
        if tie_break not in self.TIE_BREAKS:
            raise InvalidParameterError(
                f"double-auction: tie_break must be one of {', '.join(self.TIE_BREAKS)}, "
                f"got {tie_break!r}"
            )
        self.tie_break = tie_break

    def check_market(self, market: Market) -> None:
        problems = []
        if not market.divisible:
            problems.append("the market must be divisible")
        if len(market.resources) != 1:
            problems.append(f"exactly one resource is needed, got {list(market.resources)}")
        if market.conflicts or market.exclusive_nodes:
            problems.append("conflicts and exclusive nodes are not supported")
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
        at_random = self.tie_break == "random"
        priorities = random_priorities(len(bids), len(costs), seed) if at_random else {}
        outcome = trade_reduction(bids, demands, costs, capacities, **priorities)
        # A request of zero demand (the market format allows one with a value) trades no
        # unit and fits every node under any load (0 <= capacity_limit(C)): it is served in
        # full by the first node, for nothing, as in every other mechanism.
        free = [t.id for t in market.requests if t.demand[0] == 0 and t.value > 0]
        return clearing_from(market, outcome, self.name, free=free if market.nodes else ())


def clearing_from(
    market: Market, outcome: TradeReduction, mechanism: str, free: Sequence[str] = ()
) -> Clearing:
    """The `Clearing` of a `TradeReduction` on `market` (shares are fractions of demand);
    the requests `free` (of zero demand) are served in full by the first node and pay 0."""
    requests, nodes = market.requests, market.nodes
    shares = tuple(
        (requests[i].id, nodes[j].id, float(a) / requests[i].demand[0])
        for i, j, a in zip(
            outcome.plan_users.tolist(),
            outcome.plan_providers.tolist(),
            outcome.plan_amounts.tolist(),
            strict=True,
        )
    ) + tuple((t, nodes[0].id, 1.0) for t in free)
    traded_users = np.flatnonzero(outcome.user_amount > 0)
    traded_providers = np.flatnonzero(outcome.provider_amount > 0)
    payments = {
        requests[i].id: outcome.buyer_price * float(outcome.user_amount[i]) for i in traded_users
    } | dict.fromkeys(free, 0.0)
    rewards = {
        nodes[j].id: outcome.seller_price * float(outcome.provider_amount[j])
        for j in traded_providers
    }
    free_value = sum(market.request(t).value for t in free)
    bound = outcome.efficient_welfare + free_value
    gap = relative_gap(bound, outcome.welfare + free_value)
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
            "welfare": outcome.welfare + free_value,
        },
    )
