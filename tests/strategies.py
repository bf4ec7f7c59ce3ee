"""Hypothesis strategies shared by the property tests: valid markets and seed-003 auctions.

Numbers are drawn on a grid of quarters, so sums are exact in binary floating point: ties
and exactly-binding capacities happen often (they are where bugs live) and a property
that holds in exact arithmetic is not blurred by rounding.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from hypothesis import strategies as st

from mercat.market.brute_force import valid_allocations
from mercat.market.generators import AuctionArrays, auction_market
from mercat.market.model import Allocation, Conflict, Market, Node, Request

CAPABILITIES = ("gpu", "tee")


def quarters(low: float, high: float) -> st.SearchStrategy[float]:
    """Multiples of 0.25 in [low, high]."""
    return st.integers(int(low * 4), int(high * 4)).map(lambda q: q / 4)


@st.composite
def markets(
    draw: st.DrawFn,
    *,
    max_requests: int = 4,
    max_nodes: int = 3,
    max_resources: int = 2,
    divisible: bool = False,
) -> Market:
    """A valid market with every constraint kind (capacities, capabilities, replicas,
    node and market conflicts, exclusive nodes, fixed and per-unit costs), small enough to
    enumerate."""
    k = draw(st.integers(0, max_resources))
    resources = tuple(f"r{i}" for i in range(k))
    labels = st.frozensets(st.sampled_from(CAPABILITIES), max_size=len(CAPABILITIES))
    n_nodes = draw(st.integers(1, max_nodes))
    nodes = tuple(
        Node(
            f"n{j}",
            cost=draw(quarters(0, 2)),
            unit_costs=tuple(draw(quarters(0, 1)) for _ in resources),
            capacity=tuple(
                draw(st.one_of(quarters(0, 3), st.just(float("inf")))) for _ in resources
            ),
            capabilities=draw(labels),
        )
        for j in range(n_nodes)
    )
    n_requests = draw(st.integers(0, max_requests))
    requests = tuple(
        Request(
            f"t{i}",
            value=draw(quarters(0, 6)),
            demand=tuple(draw(quarters(0, 2)) for _ in resources),
            replicas=1 if divisible else draw(st.integers(1, n_nodes)),
            capabilities=draw(st.frozensets(st.sampled_from(CAPABILITIES), max_size=1)),
        )
        for i in range(n_requests)
    )
    pairs = list(combinations([t.id for t in requests], 2))
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    conflicts = tuple(Conflict(a, b, draw(st.sampled_from(("node", "market")))) for a, b in chosen)
    # Sometimes two nodes are instantiations of one machine: at most one of them is used.
    exclusive = ()
    if n_nodes >= 2 and draw(st.booleans()):
        exclusive = (tuple(draw(st.permutations([n.id for n in nodes]))[:2]),)
    return Market(
        requests, nodes, conflicts, resources, divisible=divisible, exclusive_nodes=exclusive
    )


@st.composite
def conflicted_markets(draw: st.DrawFn, max_requests: int = 7) -> Market:
    """Many market conflicts (requests never served together) beside node conflicts, no
    resources: LP relaxations serve odd cycles of them by half, which the posted-price
    placement solver and challenge model cut (`mercat.market.odd_cycles`)."""
    nodes = tuple(
        Node(f"n{k}", cost=draw(st.integers(0, 4)) / 4) for k in range(draw(st.integers(1, 3)))
    )
    requests = tuple(
        Request(f"t{k}", draw(st.integers(2, 12)) / 4, (), draw(st.integers(1, 2)))
        for k in range(draw(st.integers(3, max_requests)))
    )
    conflicts = tuple(
        Conflict(a.id, b.id, draw(st.sampled_from(("market", "market", "node"))))
        for a, b in combinations(requests, 2)
        if draw(st.integers(0, 2)) > 0
    )
    return Market(requests, nodes, conflicts, ())


@st.composite
def auction_arrays(
    draw: st.DrawFn, *, max_users: int = 12, max_providers: int = 5
) -> AuctionArrays:
    """A seed-003 double auction as arrays: bids and costs overlap, so trade is limited by
    prices as well as by capacity; some users and providers may be idle (zero quantity)."""
    n = draw(st.integers(0, max_users))
    m = draw(st.integers(0, max_providers))
    bids = draw(st.lists(quarters(0, 3), min_size=n, max_size=n))
    demands = draw(st.lists(quarters(0, 2), min_size=n, max_size=n))
    costs = draw(st.lists(quarters(0, 3), min_size=m, max_size=m))
    capacities = draw(st.lists(quarters(0, 4), min_size=m, max_size=m))
    return AuctionArrays(
        np.array(bids, dtype=float),
        np.array(demands, dtype=float),
        np.array(costs, dtype=float),
        np.array(capacities, dtype=float),
    )


def double_auction_markets(**kwargs: int) -> st.SearchStrategy[Market]:
    """Divisible single-resource markets that the double auction accepts."""
    return auction_arrays(**kwargs).map(lambda a: auction_market(a, divisible=True))


def allocations_of(market: Market) -> st.SearchStrategy[Allocation]:
    """A valid allocation of a small indivisible market (drawn from the enumeration of V)."""
    return st.sampled_from(list(valid_allocations(market)))


@st.composite
def payment_rules(
    draw: st.DrawFn, market: Market, allocation: Allocation
) -> tuple[dict[str, float], dict[str, float]]:
    """(π, φ) on the served requests and used nodes, any sign: IR or not, any margin."""
    payments = {t: draw(quarters(-2, 8)) for t in sorted(allocation.served_requests)}
    rewards = {n: draw(quarters(-2, 8)) for n in sorted(allocation.used_nodes)}
    return payments, rewards
