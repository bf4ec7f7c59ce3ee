"""The readable twin of `trade_reduction`: the same rule, one user and one provider at a time.

Plain Python lists and loops, written to be read next to the rule in
`mercat.clearing.double_auction`; tests (and benchmarks/bench_double_auction.py) hold the two
to the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mercat.clearing.double_auction import TradeReduction, check_arrays, no_trade


def trade_reduction_reference(
    bids: Sequence[float],
    demands: Sequence[float],
    costs: Sequence[float],
    capacities: Sequence[float],
    *,
    user_priority: Sequence[int] | None = None,
    provider_priority: Sequence[int] | None = None,
) -> TradeReduction:
    b, d, c, k = (a.tolist() for a in check_arrays(bids, demands, costs, capacities))
    n, m = len(b), len(c)
    first_u = list(range(n)) if user_priority is None else [int(x) for x in user_priority]
    first_p = list(range(m)) if provider_priority is None else [int(x) for x in provider_priority]

    # 1. Users by decreasing bid, providers by increasing cost; ties by priority (the
    #    index unless one is given).
    users = sorted((i for i in range(n) if d[i] > 0), key=lambda i: (-b[i], first_u[i]))
    providers = sorted((j for j in range(m) if k[j] > 0), key=lambda j: (c[j], first_p[j]))

    # 2. Efficient water-filling: each user in turn buys from the cheapest provider with
    #    spare capacity, as long as that provider's cost is at most the user's bid.
    spare = [k[j] for j in providers]  # what each provider can still sell
    p = 0  # the cheapest provider with spare capacity
    efficient: list[tuple[int, int, float]] = []  # (user, provider, amount)
    for i in users:
        need = d[i]
        while need > 0 and p < len(providers) and c[providers[p]] <= b[i]:
            take = min(need, spare[p])
            efficient.append((i, providers[p], take))
            need -= take
            spare[p] -= take
            if spare[p] <= 0:
                p += 1
        if need == d[i]:
            break  # this user got nothing; users with lower bids would not either
    if not efficient:
        return no_trade(n, m)
    marginal_user, marginal_provider = efficient[-1][0], efficient[-1][1]
    efficient_welfare = sum((b[i] - c[j]) * a for i, j, a in efficient)
    u = users.index(marginal_user)
    l = providers.index(marginal_provider)  # noqa: E741 - the seed's l*
    buyer_price, seller_price = b[marginal_user], c[marginal_provider]
    marginals = {
        "marginal_user": marginal_user,
        "marginal_provider": marginal_provider,
        "efficient_quantity": sum(a for _, _, a in efficient),
        "efficient_welfare": efficient_welfare,
        "buyer_price": buyer_price,
        "seller_price": seller_price,
    }

    # 3. Trade reduction: those ranked before the marginal pair trade, rationed in proportion.
    buyers, sellers = users[:u], providers[:l]
    total_demand = 0.0
    for i in buyers:
        total_demand += d[i]
    total_supply = 0.0
    for j in sellers:
        total_supply += k[j]
    if total_demand <= 0 or total_supply <= 0:
        return no_trade(n, m, **marginals)
    if total_demand <= total_supply:
        get = {i: d[i] for i in buyers}
        give = {j: k[j] * (total_demand / total_supply) for j in sellers}
        traded = total_demand
    else:
        get = {i: d[i] * (total_supply / total_demand) for i in buyers}
        give = {j: k[j] for j in sellers}
        traded = total_supply

    # 5. Match by water-filling: each buyer in bid order takes from the sellers in cost order.
    plan: list[tuple[int, int, float]] = []
    left = [give[j] for j in sellers]
    s = 0  # the first seller with something left
    for i in buyers:
        need = get[i]
        while need > 0 and s < len(sellers):
            take = min(need, left[s])
            plan.append((i, sellers[s], take))
            need -= take
            left[s] -= take
            if left[s] <= 0:
                s += 1

    user_amount = np.zeros(n)
    for i in buyers:
        user_amount[i] = get[i]
    provider_amount = np.zeros(m)
    for j in sellers:
        provider_amount[j] = give[j]
    welfare = sum(b[i] * get[i] for i in buyers) - sum(c[j] * give[j] for j in sellers)
    return TradeReduction(
        user_amount=user_amount,
        provider_amount=provider_amount,
        traded_quantity=traded,
        welfare=welfare,
        plan_users=np.array([i for i, _, _ in plan], dtype=np.int64),
        plan_providers=np.array([j for _, j, _ in plan], dtype=np.int64),
        plan_amounts=np.array([a for _, _, a in plan], dtype=float),
        **marginals,
    )
