"""Best responses: the HiGHS solve against the enumeration of V (the readable reference),
the closed-form prices, and the near-optimal pool against brute force."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.clearing.posted_price.pool import NearOptimalPool
from mercat.clearing.posted_price.pricing import believed_terms, offer_for
from mercat.clearing.posted_price.proposal import Proposal, Standing, compatible
from mercat.clearing.posted_price.reference import best_offer_by_enumeration
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import mechanism_for
from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import encode
from mercat.market.economics import welfare
from mercat.market.generators import running_example
from mercat.market.model import Allocation
from tests.strategies import markets, quarters

TICK = 0.25


@st.composite
def member(draw, market, allocation, maker):
    """A proposal on `allocation` with prices around the values and costs (sometimes not
    individually rational) and tolerances above and below them."""
    values, costs = believed_terms(market, allocation)
    pay = {t: v + draw(quarters(-2, 1)) for t, v in values.items()}
    rew = {n: c + draw(quarters(-1, 2)) for n, c in costs.items()}
    top = {t: p + draw(quarters(0, 2)) for t, p in pay.items()}
    low = {n: r - draw(quarters(0, 2)) for n, r in rew.items()}
    return Proposal(maker, allocation, pay, rew, top, low)


@st.composite
def situations(draw, specialization=False):
    """A small market, a standing in it, the attempt, and the maker who responds."""
    market = draw(markets(max_requests=4, max_nodes=3))
    allocations = [a for a in valid_allocations(market) if a.shares]
    attempt = draw(st.sampled_from((3, 4) if specialization else (1, 2, 3, 4)))
    maker = draw(st.sampled_from(("mm1", "mm2")))
    if not allocations or (draw(st.booleans()) and not specialization):
        return market, Standing.empty(), attempt, maker
    first = draw(member(market, draw(st.sampled_from(allocations)), "mm1"))
    members = [first]
    if specialization:
        for allocation in allocations:
            other = draw(member(market, allocation, "mm2"))
            if compatible(market, first, other) and draw(st.booleans()):
                members.append(other)
                break
    return market, Standing(tuple(members)), attempt, maker


def same_gain(fast, slow):
    if fast is None or slow is None:
        return fast is None and slow is None
    return math.isclose(fast.gain, slow.gain, rel_tol=1e-7, abs_tol=1e-7)


@settings(max_examples=80, deadline=None)
@given(situations())
def test_highs_best_response_equals_enumeration(situation):
    market, standing, attempt, maker = situation
    mechanism = mechanism_for(attempt)
    fast = BestResponder(market, mechanism, maker, TICK).exact(standing)
    slow = best_offer_by_enumeration(market, standing, mechanism, maker, TICK)
    assert same_gain(fast, slow), (fast, slow)
    if fast is not None:
        # What the best response proposes does win, and earns what it says.
        result = mechanism.submit(market, standing, fast.proposal)
        assert result.outcome.accepted, result.reason
        before = standing.margin_of(maker)
        assert result.standing.margin_of(maker) - before == pytest.approx(fast.gain)


@settings(max_examples=50, deadline=None)
@given(situations(specialization=True))
def test_highs_best_response_equals_enumeration_with_specialization(situation):
    market, standing, attempt, maker = situation
    mechanism = mechanism_for(attempt, specialization=True)
    fast = BestResponder(market, mechanism, maker, TICK).exact(standing)
    slow = best_offer_by_enumeration(market, standing, mechanism, maker, TICK)
    assert same_gain(fast, slow), (fast, slow)
    if fast is not None:
        assert mechanism.submit(market, standing, fast.proposal).outcome.accepted


@settings(max_examples=40, deadline=None)
@given(markets(max_requests=4, max_nodes=3))
def test_the_pool_lists_v_by_decreasing_welfare(market):
    every = sorted((welfare(market, a) for a in valid_allocations(market)), reverse=True)
    pool = NearOptimalPool(market, encode(market))
    listed = []
    for _ in range(min(len(every), 6)):
        bound = pool.next_welfare
        listed.append(welfare(market, pool.grow()))
        assert listed[-1] == pytest.approx(bound)
    assert listed == pytest.approx(every[: len(listed)], abs=1e-9)
    if len(listed) == len(every):
        assert pool.next_welfare == -math.inf and pool.grow() is None


def test_prices_of_a_challenge_on_the_running_example():
    # Holder α1 at full extraction; challenger α2 (shares n1 only): ∇(C) = 0 on t1 and n2,
    # so Δ = one tick to n1, and the rest is extracted: π(t2) = 4, φ(n1) = 1 + tick.
    market = running_example()
    a1 = Allocation.from_nodes({"t1": ["n1", "n2"]})
    a2 = Allocation.from_nodes({"t2": ["n1"]})
    b = Proposal("mm1", a1, {"t1": 6}, {"n1": 1, "n2": 1}, {"t1": 6}, {"n1": 1, "n2": 1})
    offer = offer_for(market, a2, Standing((b,)), mechanism_for(4), "mm2", 0.1)
    assert offer.proposal.payments == {"t2": 4.0}
    assert offer.proposal.rewards == pytest.approx({"n1": 1.1})
    assert offer.gain == pytest.approx(2.9)
    # Against a holder with slack on t1 (π = 4, π̄ = 6), Δ must beat ∇ = 2.
    b = b.with_prices({"t1": 4}, {"n1": 1, "n2": 1})
    offer = offer_for(market, a2, Standing((b,)), mechanism_for(4), "mm2", 0.1)
    assert offer.proposal.rewards == pytest.approx({"n1": 3.1})
    assert offer.gain == pytest.approx(0.9)
    # Attempt 3 ignores tolerances: one tick is enough.
    offer = offer_for(market, a2, Standing((b,)), mechanism_for(3), "mm2", 0.1)
    assert offer.gain == pytest.approx(2.9)
    # A maker cannot win against a holder it shares nothing with (α∅ against α1).
    assert offer_for(market, Allocation.empty(), Standing((b,)), mechanism_for(4), "m", 0.1) is None
