"""Bid agreement, Property 1: eventual agreement and validity when all follow the protocol;
validity even against a coalition of k < m/2; a coalition's say limited to equivocating
bidders. Both rules: "value" (default) and "bitwise" (the seed's per-bit consensus)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.auctioneer import bid_agreement
from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.deviations import EquivocateReport, LieBids
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.workloads import double_auction_bids
from mercat.errors import AuctioneerConfigError

RULES = bid_agreement.RULES


@st.composite
def bid_vectors(draw, n_max=8):
    n = draw(st.integers(0, n_max))
    ids = [f"b{i:02d}" for i in range(n)]
    side = draw(st.lists(st.sampled_from([BUY, SELL]), min_size=n, max_size=n))
    price = draw(st.lists(st.floats(0, 4, allow_nan=False), min_size=n, max_size=n))
    qty = draw(st.lists(st.floats(0.01, 4), min_size=n, max_size=n))
    return BidVector(ids, np.array(side, np.uint8), np.array(price), np.array(qty))


@st.composite
def coalition_reports(draw):
    """m, k < m/2, the consistent bids, and arbitrary reports of the coalition (anything
    at all: other prices, missing bidders, invented ones, invalid values)."""
    k = draw(st.integers(0, 3))
    m = draw(st.integers(2 * k + 1, 2 * k + 3))
    truth = draw(bid_vectors())
    liars = draw(st.lists(bid_vectors(n_max=10), min_size=k, max_size=k))
    positions = draw(st.permutations(range(m)))
    reports = [truth] * m
    for liar, j in zip(liars, positions, strict=False):
        reports[j] = liar
    return m, k, truth, reports


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=80, deadline=None)
@given(data=coalition_reports())
def test_validity_holds_against_any_k_reports(rule, data):
    _m, _k, truth, reports = data
    assert bid_agreement.decide(reports, rule) == truth.valid()


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=60, deadline=None)
@given(reports=st.lists(bid_vectors(), min_size=1, max_size=5))
def test_outputs_are_valid_and_a_function_of_the_reports(rule, reports):
    agreed = bid_agreement.decide(reports, rule)
    assert agreed.valid_mask().all()
    assert bid_agreement.decide(list(reports), rule) == agreed  # the same inputs, same output
    if rule == "value":  # every agreed bid is one that a majority reported, word for word
        for bid in agreed.bids():
            held = sum(r.get(bid.bidder) == bid for r in reports)
            assert 2 * held > len(reports)


def test_bitwise_can_splice_bids_value_cannot():
    """Three reports of one bidder, pairwise differing in different bits: the per-bit
    majority is a bid none of them holds; the per-bid majority is ⊥."""
    eps = np.finfo(float).eps  # one unit in the last place of 1.0
    prices = [1.0 + eps, 1.0 + 2 * eps, 1.0 + 4 * eps]  # last mantissa bits 001, 010, 100
    reports = [
        BidVector(["b"], np.array([BUY], np.uint8), np.array([p]), np.array([1.0])) for p in prices
    ]
    spliced = bid_agreement.decide(reports, "bitwise").get("b")
    assert spliced is not None and spliced.price == 1.0  # bits 000: nobody's bid
    assert bid_agreement.decide(reports, "value").get("b") is None


def test_unknown_rule():
    with pytest.raises(AuctioneerConfigError, match="unknown bid-agreement rule"):
        bid_agreement.decide([BidVector.empty()], "median")


def test_commitments_bind_and_hide_nothing_else():
    truth = double_auction_bids(1, 20, 3)
    salt = bytes(32)
    c = bid_agreement.report_commitment(4, "p1", truth.digest(), salt)
    assert bid_agreement.opens(c, 4, "p1", truth.digest(), salt)
    assert not bid_agreement.opens(c, 5, "p1", truth.digest(), salt)  # another round
    assert not bid_agreement.opens(c, 4, "p2", truth.digest(), salt)  # another sender
    assert not bid_agreement.opens(c, 4, "p1", truth.digest(), bytes(31) + b"\x01")
    other = double_auction_bids(2, 20, 3)
    assert not bid_agreement.opens(c, 4, "p1", other.digest(), salt)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(("m", "k"), [(1, 0), (3, 1), (5, 2), (8, 3)])
def test_end_to_end_agreement_and_validity(rule, m, k):
    """Everyone honest: every provider outputs the vector the bidders sent."""
    params = ProtocolParams(tuple(f"p{i}" for i in range(m)), k, rule=rule)
    bids = double_auction_bids(m, 30, 4)
    [r] = simulate_rounds(params, [bids])
    assert all(out.ok and out.agreed == bids for out in r.outputs.values())


@pytest.mark.parametrize("rule", RULES)
def test_end_to_end_validity_against_coalitions(rule):
    """k liars that report alike, or that equivocate: honest providers output the
    bidders' vector (liars) or ⊥ (equivocation, caught by the echo), never anything else."""
    params = ProtocolParams(tuple(f"p{i}" for i in range(5)), 2, rule=rule)
    bids = double_auction_bids(7, 25, 4)
    for cls, expect_ok in ((LieBids, True), (EquivocateReport, False)):
        behaviors = {
            p: cls(params, p, np.random.default_rng(i), plan=99) for i, p in enumerate(("p1", "p3"))
        }
        [r] = simulate_rounds(params, [bids], behaviors=behaviors)
        for p in ("p0", "p2", "p4"):
            out = r.outputs[p]
            assert out.ok is expect_ok, out.reason
            if out.ok:
                assert out.agreed == bids
