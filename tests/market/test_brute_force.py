"""The brute-force enumerator of V against the definition, on tiny markets."""

import itertools

import pytest
from hypothesis import given, settings

from mercat.errors import InvalidMarketError
from mercat.market.brute_force import best_allocation, search_space, valid_allocations
from mercat.market.constraints import is_valid
from mercat.market.generators import random_market, running_example
from mercat.market.model import Allocation
from tests.strategies import markets


def test_running_example_has_exactly_the_four_allocations_of_the_seed():
    found = set(valid_allocations(running_example()))
    assert found == {
        Allocation.empty(),
        Allocation.from_nodes({"t1": ["n1", "n2"]}),
        Allocation.from_nodes({"t2": ["n1"]}),
        Allocation.from_nodes({"t2": ["n2"]}),
    }
    assert best_allocation(running_example()) == (4.0, Allocation.from_nodes({"t1": ["n1", "n2"]}))


def every_allocation(market):
    """All maps t -> subset of nodes, valid or not (the definition's search space)."""
    node_sets = [
        s for k in range(len(market.nodes) + 1) for s in itertools.combinations(market.nodes, k)
    ]
    for choice in itertools.product(node_sets, repeat=len(market.requests)):
        yield Allocation.from_nodes(
            {t.id: [n.id for n in nodes] for t, nodes in zip(market.requests, choice, strict=True)}
        )


@settings(max_examples=80, deadline=None)
@given(markets(max_requests=3, max_nodes=2))
def test_enumeration_equals_filtering_every_allocation_by_the_checker(market):
    enumerated = list(valid_allocations(market))
    assert len(enumerated) == len(set(enumerated))
    assert set(enumerated) == {a for a in every_allocation(market) if is_valid(market, a)}


def test_divisible_and_oversized_markets_are_refused():
    with pytest.raises(InvalidMarketError, match="indivisible"):
        next(valid_allocations(random_market(0, 3, 2, divisible=True)))
    big = random_market(0, 30, 8, capability_rate=0.0, max_replicas=1)
    assert search_space(big) > 10**6
    with pytest.raises(InvalidMarketError, match="too large"):
        next(valid_allocations(big))
