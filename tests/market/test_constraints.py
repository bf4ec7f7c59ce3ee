"""The validity set V: the checker's reasons and the MILP encoding's agreement with it."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings

from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import encode, is_valid, node_load, served_fraction
from mercat.market.generators import running_example
from mercat.market.model import Allocation, Conflict, Market, Node, Request
from tests.strategies import markets


def small_market(divisible=False, scope="node"):
    return Market(
        requests=(
            Request("a", 3.0, (1.0, 0.0), replicas=1, capabilities=frozenset({"gpu"})),
            Request("b", 2.0, (1.5, 1.0)),
            Request("c", 1.0, (0.5, 0.5)),
        ),
        nodes=(
            Node("x", unit_costs=(0.0, 0.0), capacity=(2.0, 1.0), capabilities=frozenset({"gpu"})),
            Node("y", unit_costs=(0.0, 0.0), capacity=(2.0, 1.0)),
        ),
        conflicts=(Conflict("a", "c", scope),),
        resources=("cpu", "memory"),
        divisible=divisible,
    )


@pytest.mark.parametrize(
    ("allocation", "reason"),
    [
        (Allocation.from_nodes({"zz": ["x"]}), "unknown request 'zz'"),
        (Allocation.from_nodes({"a": ["q"]}), "unknown node 'q'"),
        (Allocation.from_nodes({"a": ["y"]}), "node 'y' lacks capabilities ['gpu']"),
        (Allocation.from_nodes({"a": ["x"], "b": ["x"]}), "exceeds its cpu capacity: 2.5 > 2"),
        (Allocation.from_nodes({"b": ["y"], "c": ["y"]}), "exceeds its memory capacity"),
        (Allocation.from_nodes({"b": ["x", "y"]}), "needs 1 distinct nodes, got 2"),
        (Allocation.from_shares({"b": {"y": 0.5}}), "partial shares"),
        (Allocation.from_nodes({"a": ["x"], "c": ["x"]}), "share nodes ['x']"),
    ],
)
def test_each_violation_is_reported(allocation, reason):
    validity = is_valid(small_market(), allocation)
    assert not validity
    assert any(reason in r for r in validity.reasons), validity.reasons


def test_market_conflicts_forbid_serving_both_anywhere():
    m = small_market(scope="market")
    apart = Allocation.from_nodes({"a": ["x"], "c": ["y"]})
    assert not is_valid(m, apart)
    assert "both served" in is_valid(m, apart).reasons[0]
    assert is_valid(small_market(scope="node"), apart)


def test_exclusive_nodes_are_never_used_together():
    m = Market(
        requests=(Request("a", 3.0), Request("b", 2.0)),
        nodes=(Node("cheap-for-a", cost=0.5), Node("cheap-for-b", cost=2.0)),
        exclusive_nodes=[["cheap-for-a", "cheap-for-b"]],
    )
    both = Allocation.from_nodes({"a": ["cheap-for-a"], "b": ["cheap-for-b"]})
    assert "are used together" in is_valid(m, both).reasons[0]
    assert is_valid(m, Allocation.from_nodes({"a": ["cheap-for-a"], "b": ["cheap-for-a"]}))


def test_divisible_shares_sum_to_at_most_one():
    m = small_market(divisible=True)
    ok = Allocation.from_shares({"b": {"x": 0.5, "y": 0.5}})
    assert is_valid(m, ok) and served_fraction(m, ok, "b") == 1.0
    assert node_load(m, ok, "x") == (0.75, 0.5)
    over = Allocation.from_shares({"b": {"x": 0.75, "y": 0.5}})
    assert "served 1.25 > 1 times over" in is_valid(m, over).reasons[0]


def test_running_example_validity():
    m = running_example()
    assert is_valid(m, Allocation.from_nodes({"t1": ["n1", "n2"]}))
    assert not is_valid(m, Allocation.from_nodes({"t1": ["n1"]}))  # needs 2 replicas
    assert not is_valid(m, Allocation.from_nodes({"t1": ["n1", "n2"], "t2": ["n2"]}))


def _feasible(encoding, x, tol=1e-12):
    # Rounding only: the capacity slack is in the rows' bounds (capacity_limit), not here.
    ax = encoding.matrix @ x
    integral_ok = np.all(np.abs(x[encoding.integral] - np.round(x[encoding.integral])) < tol)
    return (
        np.all(ax >= encoding.row_lower - tol)
        and np.all(ax <= encoding.row_upper + tol)
        and np.all(x >= encoding.col_lower - tol)
        and np.all(x <= encoding.col_upper + tol)
        and integral_ok
    )


@settings(max_examples=60, deadline=None)
@given(markets(max_requests=3, max_nodes=3))
def test_every_valid_allocation_is_a_feasible_point_of_the_encoding(market):
    from mercat.market.economics import welfare

    encoding = encode(market)
    for allocation in valid_allocations(market):
        x = encoding.encode_allocation(allocation, market)
        assert _feasible(encoding, x)
        assert encoding.objective @ x == pytest.approx(welfare(market, allocation), abs=1e-9)
        assert encoding.decode(x, market) == allocation


@settings(max_examples=40, deadline=None)
@given(markets(max_requests=3, max_nodes=2, max_resources=1))
def test_every_binary_point_of_the_encoding_decodes_to_a_valid_allocation(market):
    # The converse of the test above: every 0/1 share vector, with the other columns
    # completed as the encoding intends, is feasible exactly when its allocation is valid.
    encoding = encode(market)
    pairs = list(encoding.pair_columns.items())
    for bits in itertools.product((0.0, 1.0), repeat=len(pairs)):
        allocation = Allocation(
            tuple((t, n, 1.0) for ((t, n), _), b in zip(pairs, bits, strict=True) if b)
        )
        x = encoding.encode_allocation(allocation, market)
        assert bool(_feasible(encoding, x)) == bool(is_valid(market, allocation)), allocation
