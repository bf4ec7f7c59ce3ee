"""Every valid allocation of a small indivisible market: the readable reference for V.

`valid_allocations` walks the requests in order and, for each, tries "not served" and every
set of `replicas` distinct nodes that offer its capabilities, keeping a partial allocation
only while it stays valid (capacities, conflicts). Nothing clever: it is the definition of V
written as a search, so that the MILP encoding and every mechanism can be tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import combinations

from mercat.errors import InvalidMarketError
from mercat.market.constraints import can_serve, fits_alone, is_valid
from mercat.market.economics import welfare
from mercat.market.model import Allocation, Market, Request, capacity_limit

MAX_CANDIDATES = 2_000_000
"""Refuse markets whose search space (product of options per request) exceeds this."""


def _options(market: Market, request: Request) -> list[tuple[str, ...]]:
    """'Not served' and every set of `replicas` nodes that could each run the request alone."""
    able = [n.id for n in market.nodes if can_serve(n, request) and fits_alone(n, request)]
    return [(), *combinations(able, request.replicas)]


def search_space(market: Market) -> int:
    """How many candidate allocations the enumeration may visit (before pruning)."""
    return math.prod(len(_options(market, t)) for t in market.requests)


def valid_allocations(market: Market) -> Iterator[Allocation]:
    """Every α ∈ V (the empty allocation first), each exactly once."""
    if market.divisible:
        raise InvalidMarketError("brute force enumerates indivisible markets only")
    size = search_space(market)
    if size > MAX_CANDIDATES:
        raise InvalidMarketError(
            f"market too large to enumerate ({size} candidate allocations > {MAX_CANDIDATES})"
        )
    options = [_options(market, t) for t in market.requests]
    node_conflicts = {frozenset((c.first, c.second)) for c in market.conflicts if c.scope == "node"}
    market_conflicts = {
        frozenset((c.first, c.second)) for c in market.conflicts if c.scope == "market"
    }
    index = {n.id: j for j, n in enumerate(market.nodes)}
    rivals = {n.id: set() for n in market.nodes}  # nodes that may not be used with n
    for group in market.exclusive_nodes:
        for nid in group:
            rivals[nid].update(other for other in group if other != nid)
    load = [[0.0] * len(market.resources) for _ in market.nodes]
    on_node: list[list[str]] = [[] for _ in market.nodes]
    served: list[str] = []
    chosen: list[tuple[str, tuple[str, ...]]] = []

    def fits(request: Request, nodes: tuple[str, ...]) -> bool:
        for n in nodes:
            j = index[n]
            cap = market.nodes[j].capacity
            for r, d in enumerate(request.demand):
                if load[j][r] + d > capacity_limit(cap[r]):
                    return False
            if any(frozenset((request.id, other)) in node_conflicts for other in on_node[j]):
                return False
            if any(on_node[index[r]] for r in rivals[n]):
                return False
        return not any(frozenset((request.id, other)) in market_conflicts for other in served)

    def place(request: Request, nodes: tuple[str, ...], sign: int) -> None:
        for n in nodes:
            j = index[n]
            for r, d in enumerate(request.demand):
                load[j][r] += sign * d
            if sign > 0:
                on_node[j].append(request.id)
            else:
                on_node[j].remove(request.id)

    def walk(k: int) -> Iterator[Allocation]:
        if k == len(market.requests):
            yield Allocation.from_nodes(dict(chosen))
            return
        request = market.requests[k]
        for nodes in options[k]:
            if not nodes:
                yield from walk(k + 1)
                continue
            if not fits(request, nodes):
                continue
            place(request, nodes, +1)
            served.append(request.id)
            chosen.append((request.id, nodes))
            yield from walk(k + 1)
            chosen.pop()
            served.pop()
            place(request, nodes, -1)

    for allocation in walk(0):
        # Running sums can drift by rounding; the checker has the last word.
        if is_valid(market, allocation):
            yield allocation


def best_allocation(market: Market) -> tuple[float, Allocation]:
    """max_{α ∈ V} W(α) by enumeration, and the first allocation that attains it."""
    best_value, best = 0.0, Allocation.empty()
    for allocation in valid_allocations(market):
        w = welfare(market, allocation)
        if w > best_value + 1e-12:
            best_value, best = w, allocation
    return best_value, best
