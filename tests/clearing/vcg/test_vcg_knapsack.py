"""The exact real-weight knapsack (VCG pricing) and the waste-bounded packing search, each
held to a readable twin."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.clearing.vcg.knapsack import (
    dantzig_bound,
    knapsack_enumerate,
    knapsack_enumerate_reference,
    knapsack_max,
    knapsack_max_reference,
)
from mercat.clearing.vcg.packing import ColumnList, min_waste_packing, packing_reference


def random_knapsack(rng, n_max=14):
    n = int(rng.integers(0, n_max + 1))
    if rng.random() < 0.5:  # quarter grid: exact ties and exactly full knapsacks
        weights = rng.integers(1, 5, n) / 4
        profits = rng.integers(-2, 6, n) / 4
        capacity = int(rng.integers(0, 9)) / 4
    else:
        weights = rng.uniform(0.01, 1.0, n)
        profits = rng.normal(0.4, 0.5, n)
        capacity = rng.uniform(0.0, 3.0)
    return profits, weights, capacity


@pytest.mark.parametrize("seed", range(200))
def test_max_equals_pareto_dynamic_program(seed):
    profits, weights, capacity = random_knapsack(np.random.default_rng(seed))
    value, chosen, complete = knapsack_max(profits, weights, capacity)
    expected, _ = knapsack_max_reference(profits, weights, capacity)
    assert complete
    assert value == pytest.approx(expected, abs=1e-9)
    assert profits[chosen].sum() == pytest.approx(value, abs=1e-9)
    assert weights[chosen].sum() <= capacity + 1e-9
    assert dantzig_bound(profits, weights, capacity) >= value - 1e-9


@pytest.mark.parametrize("seed", range(100))
def test_floor_only_reports_better_subsets(seed):
    profits, weights, capacity = random_knapsack(np.random.default_rng(seed))
    best, _ = knapsack_max_reference(profits, weights, capacity)
    value, chosen, complete = knapsack_max(profits, weights, capacity, floor=best + 1e-6)
    assert complete and chosen.shape[0] == 0 and value == best + 1e-6
    value, chosen, complete = knapsack_max(profits, weights, capacity, floor=best - 1e-3)
    assert complete and value == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("seed", range(150))
def test_enumerate_equals_recursion(seed):
    rng = np.random.default_rng(seed)
    profits, weights, capacity = random_knapsack(rng, n_max=11)
    best, _ = knapsack_max_reference(profits, weights, capacity)
    threshold = best - rng.uniform(0.0, 1.5)
    subsets, complete = knapsack_enumerate(profits, weights, capacity, threshold, 10**6)
    expected = knapsack_enumerate_reference(profits, weights, capacity, threshold)
    assert complete
    assert sorted(map(tuple, subsets)) == sorted(tuple(sorted(s)) for s in expected)


def test_enumerate_says_when_the_list_is_cut():
    weights = np.full(10, 0.1)
    subsets, complete = knapsack_enumerate(np.ones(10), weights, 1.0, 0.0, max_subsets=50)
    assert not complete and len(subsets) <= 50


def test_node_limit_is_reported_not_hidden():
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.0, 1.0, 60) + 1e-3
    profits = weights * 1.0  # equal ratios: a subset-sum search
    _, _, complete = knapsack_max(profits, weights, 7.77, node_limit=100)
    assert not complete


def test_bad_weights_are_refused():
    with pytest.raises(ValueError):
        knapsack_max(np.ones(2), np.array([1.0, 0.0]), 1.0)
    with pytest.raises(ValueError):
        knapsack_max(np.ones(2), np.ones(3), 1.0)


@st.composite
def packings(draw):
    n = draw(st.integers(1, 7))
    m = draw(st.integers(1, 3))
    n_columns = draw(st.integers(0, 8))
    providers = np.array([draw(st.integers(0, m - 1)) for _ in range(n_columns)], dtype=np.int64)
    members = [
        np.array(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))))
        for _ in range(n_columns)
    ]
    grid = st.integers(0, 8).map(lambda q: q / 8)  # ties are common
    waste = np.array([draw(grid) for _ in range(n_columns)])
    empty = np.array([draw(grid) for _ in range(m)])
    penalty = np.array([draw(st.one_of(st.just(0.0), grid)) for _ in range(n)])
    return ColumnList.from_lists(providers, members), waste, empty, penalty


@settings(max_examples=200, deadline=None)
@given(packings())
def test_packing_search_equals_brute_force(case):
    columns, waste, empty, penalty = case
    expected = packing_reference(columns, waste, empty, penalty)
    found, chosen, complete, _ = min_waste_packing(columns, waste, empty, penalty, np.inf)
    assert complete and found == pytest.approx(expected, abs=1e-12)
    # The choice it returns is a packing worth exactly that waste.
    served: set[int] = set()
    total = 0.0
    for k, c in enumerate(chosen):
        if c < 0:
            total += empty[k]
            continue
        assert columns.providers[c] == k
        users = set(columns.members(int(c)).tolist())
        assert not users & served
        served |= users
        total += waste[c]
    total += sum(penalty[u] for u in range(len(penalty)) if u not in served)
    assert total == pytest.approx(found, abs=1e-12)
    # A budget at the optimum finds nothing better, and says so.
    again, none, complete, _ = min_waste_packing(columns, waste, empty, penalty, expected)
    assert complete and again == expected and np.all(none == -1)
