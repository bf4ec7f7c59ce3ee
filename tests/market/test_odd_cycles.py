"""Odd-cycle separation (`mercat.market.odd_cycles`) against brute force on small graphs."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.market.odd_cycles import VIOLATION, violated_odd_cycles


def _is_cycle(cycle: tuple[int, ...], edges: set[frozenset[int]]) -> bool:
    return len(set(cycle)) == len(cycle) and all(
        frozenset((cycle[k], cycle[(k + 1) % len(cycle)])) in edges for k in range(len(cycle))
    )


def _odd_cycles(n: int, edges: set[frozenset[int]]):
    """Every simple odd cycle, as a vertex set (brute force over vertex orders)."""
    for size in range(3, n + 1, 2):
        for chosen in itertools.combinations(range(n), size):
            first, rest = chosen[0], chosen[1:]
            for order in itertools.permutations(rest):
                if _is_cycle((first, *order), edges):
                    yield chosen
                    break


def test_a_half_served_five_cycle_is_cut_and_an_even_one_is_not():
    five = np.array([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)])
    (cycle,) = violated_odd_cycles(five, np.full(5, 0.5))
    assert sorted(cycle) == [0, 1, 2, 3, 4] and _is_cycle(cycle, {frozenset(e) for e in five})
    assert violated_odd_cycles(five, np.array([1.0, 0, 1, 0, 0])) == []  # a stable set
    assert violated_odd_cycles(five, np.full(5, 0.4)) == []  # 2.0 ≤ (5 - 1) / 2
    four = np.array([(0, 1), (1, 2), (2, 3), (3, 0)])
    assert violated_odd_cycles(four, np.full(4, 0.5)) == []
    assert violated_odd_cycles(np.zeros((0, 2)), np.full(3, 0.5)) == []


@st.composite
def _graph_and_point(draw):
    n = draw(st.integers(3, 7))
    pairs = list(itertools.combinations(range(n), 2))
    edges = [p for p in pairs if draw(st.booleans())]
    # a point in [0, 1] that satisfies every edge row, often at 1/2 (where cycles break)
    x = np.array([draw(st.sampled_from([0.0, 0.25, 0.4, 0.5, 0.5, 0.6, 1.0])) for _ in range(n)])
    for a, b in edges:
        if x[a] + x[b] > 1:
            x[b] = 1 - x[a]
    return n, edges, x


@settings(max_examples=300, deadline=None)
@given(_graph_and_point())
def test_every_cycle_found_is_violated_and_none_is_missed(case):
    n, edges, x = case
    edge_set = {frozenset(e) for e in edges}
    found = violated_odd_cycles(np.array(edges, dtype=np.int64).reshape(-1, 2), x)
    for cycle in found:
        assert len(cycle) % 2 == 1 and _is_cycle(cycle, edge_set), cycle
        assert x[list(cycle)].sum() > (len(cycle) - 1) / 2 + VIOLATION, cycle
    assert len({frozenset(c) for c in found}) == len(found)
    violated = [
        c for c in _odd_cycles(n, edge_set) if x[list(c)].sum() > (len(c) - 1) / 2 + 2 * VIOLATION
    ]
    assert bool(found) == bool(violated), (violated, found)
