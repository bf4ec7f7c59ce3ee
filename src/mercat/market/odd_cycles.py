"""Odd-cycle inequalities of a conflict graph, and their separation.

Two requests in a market conflict are never both served, so the requests an allocation
serves are a stable set of the graph whose edges are the market conflicts. The edge rows
s_a + s_b ≤ 1 describe that set for integral points only: an LP relaxation may serve every
request of a conflict-ridden market by half. For an odd cycle C of the graph, at most
(|C| - 1) / 2 of its requests can be served,

    Σ_{t ∈ C} s_t ≤ (|C| - 1) / 2,

which no half-served cycle satisfies. On a random 1000-request market with 2,504 market
conflicts (`random_market(0, 1000, 100, n_resources=0, conflict_rate=0.01)`) the edge rows
leave the LP bound of the heaviest stable set (the requests' values) 62.6 above its
optimum, and three rounds of separation, 806 odd-cycle rows, close that gap to zero.
The posted-price placement solver adds them to its projected encoding
(`posted_price_placement`).

Separation is exact and polynomial (Grötschel, Lovász and Schrijver, "Geometric Algorithms
and Combinatorial Optimization", 1988, §9.1): give each edge ab the weight
w_ab = 1 - x_a - x_b (≥ 0 where the edge rows hold). A cycle's inequality is violated
exactly when its edges weigh less than 1, since Σ_{ab ∈ C} w_ab = |C| - 2·Σ_{t ∈ C} x_t.
The lightest odd closed walk through a vertex v is a shortest path from (v, 0) to (v, 1) in
the bipartite double cover (each edge ab joins (a, 0) to (b, 1) and (a, 1) to (b, 0)). A
closed walk that repeats a vertex splits there into two closed walks, one of them odd and
no heavier (weights are not negative), so the lightest one holds a simple odd cycle at
most as heavy.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

VIOLATION = 1e-6
"""How far Σ_{t ∈ C} x_t must exceed (|C| - 1) / 2 for a cycle to be returned: what the
LP's own tolerances cannot produce."""

CHUNK = 256
"""Shortest paths are computed from this many vertices at once (a CHUNK × 2n table)."""


def violated_odd_cycles(
    edges: np.ndarray, x: np.ndarray, *, limit: int = 1000
) -> list[tuple[int, ...]]:
    """Odd cycles of the graph on vertices 0..len(x)-1 with `edges` (an (m, 2) array) whose
    inequality Σ_{t ∈ C} x_t ≤ (|C| - 1) / 2 the point `x` (in [0, 1], satisfying the edge
    rows) violates, at most `limit` of them, each once (vertices in cycle order). None are
    returned only if none is violated."""
    # each edge once: a repeated edge would add its weight twice in the double cover
    edges = np.unique(np.sort(np.asarray(edges, dtype=np.int64).reshape(-1, 2), axis=1), axis=0)
    x = np.asarray(x, dtype=float)
    n = len(x)
    if not len(edges) or limit <= 0:
        return []
    a, b = edges[:, 0], edges[:, 1]
    # an edge that the point overfills would get a negative weight; its own row is violated
    # and the caller has it already, so it weighs nothing here
    weight = np.maximum(0.0, 1.0 - x[a] - x[b])
    # the double cover: vertex v is v (side 0) and n + v (side 1); every edge changes sides.
    # scipy's graphs drop zero-weight entries, so each weight carries a tiny excess
    # (2·m·1e-12 in all: far below VIOLATION)
    heads = np.concatenate([a, a + n, b, b + n])
    tails = np.concatenate([b + n, b, a + n, a])
    graph = sparse.csr_array((np.tile(weight, 4) + 1e-12, (heads, tails)), shape=(2 * n, 2 * n))
    # a cycle through v alone puts x_v > 0 on it: only such vertices can start one
    starts = np.nonzero(x > VIOLATION)[0]
    found: dict[frozenset[int], tuple[int, ...]] = {}
    for chunk in range(0, len(starts), CHUNK):
        sources = starts[chunk : chunk + CHUNK]
        distance, predecessor = dijkstra(
            graph, indices=sources, return_predecessors=True, limit=1.0
        )
        for k, start in enumerate(sources.tolist()):
            if not distance[k, start + n] < 1.0 - VIOLATION:
                continue
            walk = [start]  # back from (start, 1) to (start, 0), one vertex per edge
            at = int(predecessor[k, start + n])
            while at != start:
                walk.append(at % n)
                at = int(predecessor[k, at])
            cycle = _simple_odd_cycle(walk)
            if len(cycle) < 3 or 2 * x[list(cycle)].sum() <= len(cycle) - 1 + 2 * VIOLATION:
                continue  # rounding: the walk weighed just under 1, the cycle does not
            key = frozenset(cycle)
            if key not in found:
                found[key] = cycle
                if len(found) >= limit:
                    return list(found.values())
    return list(found.values())


def _simple_odd_cycle(walk: list[int]) -> tuple[int, ...]:
    """A simple odd cycle within the odd closed walk `walk` (its vertices in order, the
    first not repeated at the end), no heavier than the walk: split at a repeated vertex
    and keep the odd part until no vertex repeats."""
    while True:
        seen: dict[int, int] = {}
        for position, vertex in enumerate(walk):
            if vertex in seen:
                inner = walk[seen[vertex] : position]
                outer = walk[: seen[vertex]] + walk[position:]
                walk = inner if len(inner) % 2 else outer
                break
            seen[vertex] = position
        else:
            return tuple(walk)
