"""`optimal`: the HiGHS MILP against brute force, and its certificate."""

import numpy as np
import pytest
from hypothesis import given, settings

from mercat.clearing.double_auction import trade_reduction
from mercat.clearing.optimal import OptimalMechanism, solve_welfare
from mercat.errors import InvalidParameterError
from mercat.market.brute_force import best_allocation
from mercat.market.constraints import is_valid
from mercat.market.economics import margin, welfare
from mercat.market.generators import (
    auction_market,
    random_market,
    running_example,
    standard_auction_market,
)
from mercat.market.model import Allocation
from mercat.testing.contract import MechanismContract
from tests.strategies import auction_arrays, markets


class TestOptimal(MechanismContract):
    mechanism = OptimalMechanism


class TestOptimalOnDivisibleMarkets(MechanismContract):
    mechanism = OptimalMechanism

    def make_market(self, rng):
        return random_market(rng, int(rng.integers(1, 7)), int(rng.integers(1, 4)), divisible=True)


@settings(max_examples=120, deadline=None)
@given(markets(max_requests=4, max_nodes=3))
def test_optimal_equals_brute_force_on_every_small_market(market):
    best, _ = best_allocation(market)
    result = OptimalMechanism().clear(market)
    assert is_valid(market, result.allocation)
    assert welfare(market, result.allocation) == pytest.approx(best, abs=1e-9)
    assert result.proven and result.bound == pytest.approx(best, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(auction_arrays(max_users=10, max_providers=4))
def test_divisible_optimum_equals_efficient_water_filling(arrays):
    # One resource, linear values and costs, no other constraint: greedy water-filling is
    # optimal, so the LP and the double auction's efficient step must agree.
    market = auction_market(arrays, divisible=True)
    optimum = solve_welfare(market)
    efficient = trade_reduction(arrays.bids, arrays.demands, arrays.costs, arrays.capacities)
    assert optimum.welfare == pytest.approx(efficient.efficient_welfare, abs=1e-7)


def test_running_example_clears_at_alpha_one_with_zero_margin():
    result = OptimalMechanism().clear(running_example())
    assert result.allocation == Allocation.from_nodes({"t1": ["n1", "n2"]})
    assert (result.bound, result.gap, result.proven) == (4.0, 0.0, True)
    assert result.payments == {"t1": 2.0} and result.rewards == {"n1": 1.0, "n2": 1.0}
    assert margin(result.payments, result.rewards) == 0


def test_seed_changes_nothing_on_a_unique_optimum():
    market = random_market(3, 6, 4)
    results = {OptimalMechanism().clear(market, seed=s).allocation for s in range(3)}
    assert len(results) == 1


def test_options_are_validated():
    with pytest.raises(InvalidParameterError):
        OptimalMechanism(time_limit=-1)
    with pytest.raises(InvalidParameterError):
        OptimalMechanism(rel_gap=-0.1)
    with pytest.raises(InvalidParameterError):
        OptimalMechanism(threads=0)


def test_an_empty_market_clears_to_nothing():
    market = random_market(0, 0, 2)
    result = OptimalMechanism().clear(market, seed=np.random.default_rng(1))
    assert result.allocation == Allocation.empty() and result.proven and result.bound == 0


def test_a_time_limited_solve_says_it_is_not_proven():
    # The seed-003 standard auction is hard for a plain MILP; a millisecond proves nothing.
    market = standard_auction_market(0, 80, 8)
    result = OptimalMechanism(time_limit=1e-3).clear(market)
    assert is_valid(market, result.allocation)
    assert result.bound >= welfare(market, result.allocation)
    assert not result.proven and result.gap > 0
