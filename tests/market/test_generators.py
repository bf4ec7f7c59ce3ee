"""Market generators: reproducible, every constraint kind, the seed-003 set-ups."""

import numpy as np
import pytest

from mercat.clearing.optimal import solve_welfare
from mercat.errors import InvalidParameterError
from mercat.market.generators import (
    SEED_CAPACITY_FACTOR,
    WIDE_CAPACITY_FACTOR,
    double_auction_arrays,
    double_auction_market,
    random_market,
    standard_auction_arrays,
    standard_auction_market,
)


def test_same_seed_same_market_and_generators_accepted():
    assert random_market(5, 6, 3) == random_market(5, 6, 3)
    assert random_market(5, 6, 3) != random_market(6, 6, 3)
    assert random_market(np.random.default_rng(5), 6, 3) == random_market(5, 6, 3)
    assert double_auction_market(1, 50) == double_auction_market(1, 50)


def test_random_markets_exercise_every_constraint_kind():
    markets = [random_market(s, 8, 4) for s in range(10)]
    conflicts = [c for m in markets for c in m.conflicts]
    assert {c.scope for c in conflicts} == {"node", "market"}
    requests = [t for m in markets for t in m.requests]
    assert any(t.replicas > 1 for t in requests)
    assert any(t.capabilities for t in requests)
    nodes = [n for m in markets for n in m.nodes]
    assert any(n.cost > 0 for n in nodes) and any(any(n.unit_costs) for n in nodes)
    assert any(m.exclusive_nodes for m in markets)
    # Capacities bind: some node cannot take all requests it could serve.
    assert all(len(m.resources) == 2 for m in markets)
    divisible = random_market(0, 8, 4, divisible=True)
    assert divisible.divisible and all(t.replicas == 1 for t in divisible.requests)


def test_double_auction_set_up_follows_seed_003():
    a = double_auction_arrays(3, 20_000, 8)
    assert a.bids.min() >= 0.75 and a.bids.max() <= 1.25
    assert a.demands.min() > 0 and a.demands.max() <= 1
    assert a.costs.min() > 0 and a.costs.max() <= 1
    share = a.demands.sum() / 8
    assert np.all((a.capacities >= 0.5 * share) & (a.capacities <= 1.5 * share))
    m = double_auction_market(3, 10, 2)
    assert m.divisible and m.resources == ("bandwidth",)
    assert m.request("u1").unit_bid == pytest.approx(double_auction_arrays(3, 10, 2).bids[0])


def test_standard_auction_capacity_follows_the_seed_factor():
    # The seed scales each provider's share D/m by U[0, 0.25] (mean 0.125: an eighth of the
    # demand fits); the wider reading U[0, 0.5] lets about a quarter fit.
    for factor, mean in ((SEED_CAPACITY_FACTOR, 0.125), (WIDE_CAPACITY_FACTOR, 0.25)):
        ratios = []
        for seed in range(200):
            a = standard_auction_arrays(seed, 125, 8, capacity_factor=factor)
            ratios.append(a.capacities.sum() / a.demands.sum())
        assert mean * 0.92 <= float(np.mean(ratios)) <= mean * 1.08
    market = standard_auction_market(0, 16, 8)
    assert not market.divisible and all(n.unit_costs == (0.0,) for n in market.nodes)
    winners = len(solve_welfare(market).allocation.served_requests)
    assert 0 < winners < 16


def test_bad_sizes_are_rejected():
    with pytest.raises(InvalidParameterError):
        random_market(0, -1, 2)
    with pytest.raises(InvalidParameterError):
        double_auction_arrays(0, 10, 0)
