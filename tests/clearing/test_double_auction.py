"""`double-auction`: the trade-reduction rule, its twin, and its economic properties."""

from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.clearing.double_auction import DoubleAuction, trade_reduction
from mercat.clearing.double_auction_reference import trade_reduction_reference
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.market.constraints import is_valid
from mercat.market.economics import ir_violations, margin, summarize
from mercat.market.generators import (
    AuctionArrays,
    auction_market,
    double_auction_arrays,
    double_auction_market,
    running_example,
)
from mercat.market.model import Clearing, Market, Node, Request
from mercat.testing.contract import MechanismContract
from mercat.testing.truthfulness import misreport_gains, misreports_pay
from tests.strategies import auction_arrays


def crossing_market(rng: np.random.Generator):
    """Seed-003 users with providers whose costs reach above the bids, so both prices and
    capacities limit trade (with the seed's costs U(0, 1] every provider is cheap enough)."""
    n, m = int(rng.integers(5, 30)), int(rng.integers(3, 8))
    arrays = double_auction_arrays(rng, n, m)
    costs = rng.uniform(0.2, 1.2, m)
    return auction_market(AuctionArrays(arrays.bids, arrays.demands, costs, arrays.capacities),
                          divisible=True)  # fmt: skip


class TestDoubleAuction(MechanismContract):
    mechanism = DoubleAuction
    n_markets = 20
    misreport_samples = 400

    def make_market(self, rng):
        return crossing_market(rng)


def test_hand_computed_example():
    # Users (bid, demand): (3, 1), (2, 0.5), (1.2, 1), (1, 1); providers (cost, capacity):
    # (0.5, 1), (0.8, 1), (1.5, 2). Efficient: u1 <- p1, u2 and half of u3 <- p2; u3 is the
    # marginal user (1.2), p2 the marginal provider (0.8). Reduced: u1, u2 (demand 1.5)
    # with p1 (capacity 1): users get 2/3 of their demand at 1.2, p1 sells 1 at 0.8.
    out = trade_reduction([3, 2, 1.2, 1], [1, 0.5, 1, 1], [0.5, 0.8, 1.5], [1, 1, 2])
    assert (out.marginal_user, out.marginal_provider) == (2, 1)
    assert (out.buyer_price, out.seller_price) == (1.2, 0.8)
    assert out.efficient_quantity == 2.0 and out.efficient_welfare == pytest.approx(3.3)
    np.testing.assert_allclose(out.user_amount, [2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(out.provider_amount, [1, 0, 0])
    assert out.traded_quantity == 1 and out.margin == pytest.approx(0.4)
    assert out.welfare == pytest.approx(3 * 2 / 3 + 2 / 3 - 0.5)


def same_plan(a, b):
    def table(o):
        t = {}
        for i, j, x in zip(o.plan_users, o.plan_providers, o.plan_amounts, strict=True):
            t[(int(i), int(j))] = t.get((int(i), int(j)), 0.0) + float(x)
        return {k: v for k, v in t.items() if v > 1e-12}

    ta, tb = table(a), table(b)
    return ta.keys() == tb.keys() and all(abs(ta[k] - tb[k]) < 1e-9 for k in ta)


def assert_twins_agree(fast, slow):
    assert (fast.marginal_user, fast.marginal_provider) == (
        slow.marginal_user,
        slow.marginal_provider,
    )
    assert fast.buyer_price == slow.buyer_price or (
        np.isnan(fast.buyer_price) and np.isnan(slow.buyer_price)
    )
    np.testing.assert_allclose(fast.user_amount, slow.user_amount, atol=1e-12)
    np.testing.assert_allclose(fast.provider_amount, slow.provider_amount, atol=1e-12)
    assert fast.welfare == pytest.approx(slow.welfare, abs=1e-9)
    assert fast.efficient_welfare == pytest.approx(slow.efficient_welfare, abs=1e-9)
    assert same_plan(fast, slow)


@settings(max_examples=300, deadline=None)
@given(auction_arrays())
def test_fast_path_equals_reference_on_exact_inputs(arrays):
    a = (arrays.bids, arrays.demands, arrays.costs, arrays.capacities)
    assert_twins_agree(trade_reduction(*a), trade_reduction_reference(*a))


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_equals_reference_on_seed_003_draws(seed):
    arrays = double_auction_arrays(seed, 5_000, 8)
    a = (arrays.bids, arrays.demands, arrays.costs, arrays.capacities)
    assert_twins_agree(trade_reduction(*a), trade_reduction_reference(*a))


@settings(max_examples=200, deadline=None)
@given(auction_arrays())
def test_never_a_deficit_and_individually_rational(arrays):
    market = auction_market(arrays, divisible=True)
    result = DoubleAuction().clear(market)
    assert is_valid(market, result.allocation)
    assert margin(result.payments, result.rewards) >= -1e-12
    assert not ir_violations(market, result.allocation, result.payments, result.rewards)
    # Every trader faces one price per unit on its side of the market.
    for t in result.allocation.served_requests:
        assert result.payments[t] <= market.request(t).value + 1e-12


def near_the_margin(market, cleared, rng):
    """The marginal user or provider or a neighbour in rank: where manipulation could pay."""
    users = sorted(market.requests, key=lambda t: -t.unit_bid)
    nodes = sorted(market.nodes, key=lambda n: n.unit_costs[0])
    pick_user = rng.random() < 0.5
    ranked = users if pick_user else nodes
    marginal = cleared.diagnostics["marginal_user" if pick_user else "marginal_provider"]
    ids = [p.id for p in ranked]
    centre = ids.index(marginal) if marginal in ids else 0
    k = int(np.clip(centre + rng.integers(-2, 3), 0, len(ids) - 1))
    return ids[k]


def test_misreports_near_the_margin_never_pay():
    # Dominant-strategy truthfulness: not one sampled misreport gains (tolerance 1e-9), so
    # in particular none pays in expectation.
    rng = np.random.default_rng(11)
    markets = [crossing_market(np.random.default_rng(500 + i)) for i in range(30)]
    gains = misreport_gains(DoubleAuction(), markets, rng, 600, choose=near_the_margin,
                            factors=(0.6, 1.4))  # fmt: skip
    assert gains.max() <= 1e-9
    assert (gains < -1e-9).mean() > 0.05  # the samples do reach outcomes that lying hurts
    assert not misreports_pay(gains)[0]


def pay_as_bid(market, seed):
    """A deliberately manipulable variant: the same trades, each trader pays its own bid."""
    result = DoubleAuction().clear(market, seed=seed)
    payments = {
        t: market.request(t).value * sum(result.allocation.shares_of(t).values())
        for t in result.payments
    }
    return Clearing("pay-as-bid", result.allocation, payments, result.rewards,
                    diagnostics=result.diagnostics)  # fmt: skip


def a_trading_user(market, cleared, rng):
    traders = sorted(cleared.payments) or [market.requests[0].id]
    return traders[int(rng.integers(len(traders)))]


def test_the_misreport_test_detects_a_manipulable_rule():
    # The power check: the same test, on a rule where shading one's bid a little pays,
    # rejects; on the double auction, with the very same draws, it does not.
    markets = [crossing_market(np.random.default_rng(900 + i)) for i in range(30)]
    draws = dict(choose=a_trading_user, factors=(0.9, 1.0))
    gains = misreport_gains(pay_as_bid, markets, np.random.default_rng(12), 200, **draws)
    pays, p_value = misreports_pay(gains)
    assert pays, p_value
    gains = misreport_gains(DoubleAuction(), markets, np.random.default_rng(12), 200, **draws)
    assert not misreports_pay(gains)[0] and gains.max() <= 1e-9


def test_unsupported_markets_are_refused_with_reasons():
    with pytest.raises(InvalidMarketError, match=r"must be divisible.*one resource.*fixed cost"):
        DoubleAuction().clear(running_example())


def test_unlimited_capacity_and_idle_participants():
    market = auction_market(
        AuctionArrays(np.array([1.0, 0.9, 0.8]), np.array([1.0, 0.0, 1.0]),
                      np.array([0.1, 0.2, 0.3]), np.array([np.inf, 1.0, 0.0])),
        divisible=True,
    )  # fmt: skip
    result = DoubleAuction().clear(market)
    summary = summarize(market, result)
    assert summary.valid and summary.individually_rational and summary.budget_balanced
    assert "u2" not in result.payments and "p3" not in result.rewards


def test_seed_003_set_up_clears_with_bound_and_gap():
    market = double_auction_market(1, 2_000, 8)
    result = DoubleAuction().clear(market)
    summary = summarize(market, result)
    assert summary.valid and summary.individually_rational and summary.budget_balanced
    assert result.bound >= summary.welfare and 0 < result.gap < 0.5
    assert result.diagnostics["traded_quantity"] < result.diagnostics["efficient_quantity"]


# --- tie-breaking ---------------------------------------------------------------------


def tied_market(rng: np.random.Generator):
    """Bids and costs on a grid of quarters, so that ties are common, also at the margin."""
    n, m = int(rng.integers(6, 20)), int(rng.integers(3, 7))
    grid = np.arange(1, 13) / 4
    arrays = AuctionArrays(
        rng.choice(grid, n), rng.choice(grid[:6], n), rng.choice(grid, m), rng.choice(grid, m)
    )
    return auction_market(arrays, divisible=True)


class TestDoubleAuctionRandomTies(MechanismContract):
    mechanism = DoubleAuction
    options: ClassVar[dict[str, str]] = {"tie_break": "random"}
    n_markets = 20
    misreport_samples = 400

    def make_market(self, rng):
        return tied_market(rng)


@settings(max_examples=300, deadline=None)
@given(auction_arrays(), st.randoms(use_true_random=False))
def test_fast_path_equals_reference_with_priorities(arrays, random):
    a = (arrays.bids, arrays.demands, arrays.costs, arrays.capacities)
    users, providers = list(range(len(a[0]))), list(range(len(a[2])))
    random.shuffle(users)
    random.shuffle(providers)
    priorities = {"user_priority": np.array(users, dtype=np.int64),
                  "provider_priority": np.array(providers, dtype=np.int64)}  # fmt: skip
    assert_twins_agree(
        trade_reduction(*a, **priorities), trade_reduction_reference(*a, **priorities)
    )


def test_index_priority_is_the_default_order():
    arrays = double_auction_arrays(3, 2_000, 8)
    a = (np.round(arrays.bids * 4) / 4, arrays.demands, np.round(arrays.costs * 4) / 4,
         arrays.capacities)  # fmt: skip
    identity = {"user_priority": np.arange(2_000), "provider_priority": np.arange(8)}
    assert_twins_agree(trade_reduction(*a), trade_reduction(*a, **identity))


def test_a_random_tie_break_excludes_each_tied_user_equally_often():
    # Three users bid 1.0 for one unit each and one provider sells two units at 0.5, another
    # two at 0.9: efficient trade serves all three, so one of the tied users is the marginal
    # user, excluded by trade reduction. By index it is always the last; at random each of
    # the three is excluded about a third of the time (chi-square, 600 seeds).
    arrays = AuctionArrays(np.ones(3), np.ones(3), np.array([0.5, 0.9]), np.array([2.0, 2.0]))
    market = auction_market(arrays, divisible=True)
    by_index = DoubleAuction().clear(market, seed=0)
    assert by_index.diagnostics["marginal_user"] == market.requests[2].id
    mechanism = DoubleAuction(tie_break="random")
    counts = {t.id: 0 for t in market.requests}
    for seed in range(600):
        counts[mechanism.clear(market, seed=seed).diagnostics["marginal_user"]] += 1
    chi2 = sum((c - 200) ** 2 / 200 for c in counts.values())
    assert chi2 < 13.8, counts  # the 0.001 quantile of chi-square with 2 degrees of freedom
    # The same seed gives the same clearing; the excluded user is never paid for.
    again = mechanism.clear(market, seed=5)
    assert again == mechanism.clear(market, seed=5)
    assert again.diagnostics["marginal_user"] not in again.payments


def test_bad_tie_breaks_and_priorities_are_refused():
    with pytest.raises(InvalidParameterError, match="tie_break must be one of index, random"):
        DoubleAuction(tie_break="coin")
    a = ([1.0, 1.0], [1.0, 1.0], [0.5], [1.0])
    with pytest.raises(InvalidMarketError, match="user priority must be a permutation"):
        trade_reduction(*a, user_priority=np.array([0, 0]))
    with pytest.raises(InvalidMarketError, match="provider priority must be 1 integers"):
        trade_reduction(*a, provider_priority=np.array([0, 1]))


def test_a_request_without_demand_is_served_free_outside_the_trade():
    # The market format allows a value with demand 0: it takes no unit from anyone, so it is
    # served in full by the first node, pays nothing, and counts in the welfare and bound.
    base = double_auction_market(3, 12, 3)
    free = Request("free", value=2.0, demand=(0.0,))
    nothing = Request("nothing", value=0.0, demand=(0.0,))
    market = Market((*base.requests, free, nothing), base.nodes, resources=base.resources,
                    divisible=True)  # fmt: skip
    alone, together = DoubleAuction().clear(base), DoubleAuction().clear(market)
    assert together.allocation.shares_of("free") == {base.nodes[0].id: 1.0}
    assert "nothing" not in together.allocation.served_requests
    assert together.payment("free") == 0.0
    assert together.bound == pytest.approx(alone.bound + 2.0)
    assert together.diagnostics["welfare"] == pytest.approx(alone.diagnostics["welfare"] + 2.0)
    assert is_valid(market, together.allocation)
    assert summarize(market, together).welfare == pytest.approx(together.diagnostics["welfare"])


def test_proven_only_when_trade_reduction_gives_nothing_up():
    # No bid reaches the cost: nothing trades, nothing is lost, the empty allocation is
    # optimal. With trade, the marginal pair is given up: not optimal.
    dear = Market(
        (Request.bidding("u1", 0.5, 1.0), Request.bidding("u2", 0.4, 1.0)),
        (Node("p1", unit_costs=(0.9,), capacity=(5.0,)),),
        resources=("bw",),
        divisible=True,
    )
    none = DoubleAuction().clear(dear)
    assert none.allocation.shares == () and none.gap == 0.0 and none.proven
    traded = DoubleAuction().clear(double_auction_market(1, 20, 4))
    assert traded.gap > 0 and not traded.proven


def test_the_marginal_provider_is_named_when_it_is_the_first_node():
    # One provider: it sells the last unit, so it is l* (index 0) and is named.
    market = Market(
        (Request.bidding("u1", 2.0, 1.0), Request.bidding("u2", 1.5, 1.0)),
        (Node("p1", unit_costs=(0.5,), capacity=(5.0,)),),
        resources=("bw",),
        divisible=True,
    )
    clearing = DoubleAuction().clear(market)
    assert clearing.diagnostics["marginal_provider"] == "p1"
    assert clearing.diagnostics["marginal_user"] == "u2"
