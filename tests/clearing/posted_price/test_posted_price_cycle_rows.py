"""What the challenge model's LP carries and gives (`posted_price_cycle_rows`,
`ChallengeModel._with_lp_point`): odd-cycle rows found once, retired when idle, revived from
the pool when violated again; a challenge model that keeps them across a sequence of holders
answers what the reference answers for each; and an LP optimum that is an allocation
answers without a MILP."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mercat.clearing.posted_price import challenge
from mercat.clearing.posted_price.challenge import ChallengeModel
from mercat.clearing.posted_price.cycle_rows import RETIRE_AFTER, CycleRows
from mercat.clearing.posted_price.proposal import Proposal, Standing
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import mechanism_for
from mercat.market.brute_force import valid_allocations
from mercat.market.model import Allocation, Conflict, Market, Node, Request
from mercat.market.odd_cycles import violated_odd_cycles
from tests.clearing.posted_price.test_posted_price_challenge import drawn_candidates
from tests.clearing.posted_price.test_posted_price_response import TICK, member, same_gain
from tests.strategies import conflicted_markets

PENTAGON = np.array([(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)])


def pentagon_rows(x):
    return [
        (dict.fromkeys(cycle, 1.0), -math.inf, (len(cycle) - 1) / 2)
        for cycle in violated_odd_cycles(PENTAGON, x[:5], limit=10)
    ]


def test_a_row_is_found_once_retired_when_idle_and_revived_from_the_pool():
    pool = CycleRows(5, pentagon_rows)
    half = np.full(5, 0.5)
    # the LP's point may carry more columns than the rows' (a holder's)
    assert pool.violated(np.append(half, 7.0)) == [0]
    ((coefficients, _, upper),) = pool.rows
    assert set(coefficients) == {0, 1, 2, 3, 4} and upper == 2
    assert pool.active == [0] and pool.found == 1
    # a point that meets it (the next LP optimum) violates nothing new
    assert pool.violated(np.array([1.0, 0, 1, 0, 0])) == []
    assert pool.binding(np.array([0.25])) == [0]
    assert pool.binding(np.array([0.0])) == []
    assert pool.retire(np.array([0.25])) == []  # bound: its idle count starts again
    for _ in range(RETIRE_AFTER - 1):
        assert pool.retire(np.zeros(1)) == []
    assert pool.retire(np.zeros(1)) == [0]  # position 0 of `active` leaves the LP
    assert pool.active == [] and pool.retired == 1
    # violated again: back from the pool, not separated afresh
    assert pool.violated(half) == [0]
    assert pool.active == [0] and pool.found == 1 and pool.revived == 1
    assert pool.statistics() == {
        "cycle_rows_found": 1,
        "cycle_rows_active": 1,
        "cycle_rows_revived": 1,
        "cycle_rows_retired": 1,
    }


def answers_like_the_reference(market, holders, attempt, maker, data=None):
    """One challenge model against each holder in turn (its cycle rows kept between them),
    each answer held to the reference's MILP; the model is returned."""
    reference = BestResponder(market, mechanism_for(attempt), maker, TICK)
    model = ChallengeModel(market, attempt, TICK, reference.encoding())
    for holder in holders:
        standing = Standing((holder,))
        expected = reference.challenge(standing)

        def price(allocation, standing=standing):
            return reference.offer(allocation, standing)

        if data is None:
            candidates = [(price(holder.allocation), holder.allocation)]
        else:
            candidates = drawn_candidates(market, holder, price, data)
        got = model.best(holder, maker, candidates, price)
        assert same_gain(got, expected), (got, expected)
    return model


def holding(request, payment):
    """mm1's proposal serving one request on the free node at this price, no tolerance."""
    allocation = Allocation(((request, "n0", 1.0),))
    return Proposal(
        "mm1", allocation, {request: payment}, {"n0": 0.0}, {request: payment}, {"n0": 0.0}
    )


@pytest.fixture(params=[False, True], ids=["bound-only", "in-milp"])
def rows_in_milp(request, monkeypatch):
    """Both ways of using the cycle rows: in the bound and the fixing only, or also in the
    restricted MILP (those that bind)."""
    monkeypatch.setattr(challenge, "CYCLE_ROWS_IN_MILP", request.param)
    return request.param


def test_rows_found_retired_and_revived_across_holders_leave_the_answers_exact(rows_in_milp):
    # A triangle of market conflicts (t1, t2, t3) and t4 against t3, on one free node: the
    # welfare LP serves the triangle by half but one of them whole does as well, so R
    # starts without its cycle row; the challenges against t4 then t3 cut it, the
    # challenges against t4 again leave it idle until it is retired, and the challenge
    # against t3 that follows needs it again.
    requests = tuple(Request(f"t{k}", 0.5, (), 1) for k in range(5))
    pairs = (("t1", "t2"), ("t1", "t3"), ("t2", "t3"), ("t3", "t4"))
    market = Market(
        requests, (Node("n0", cost=0.0),), tuple(Conflict(a, b, "market") for a, b in pairs), ()
    )
    holders = [
        holding("t4", 0.5),
        holding("t4", 0.75),
        holding("t3", 0.5),
        holding("t3", 0.5),
        holding("t4", 0.5),
    ]
    model = answers_like_the_reference(market, holders, 3, "mm1")
    cycles = model.placement.cycle_rows
    assert (cycles.found, cycles.retired, cycles.revived) > (0, 0, 0), cycles.statistics()
    assert cycles.found > 0 and cycles.retired > 0 and cycles.revived > 0, cycles.statistics()


@st.composite
def sequences(draw):
    """A conflicted market, several holders in turn, the attempt and the maker."""
    market = draw(conflicted_markets(6))
    allocations = [a for a in valid_allocations(market) if a.shares]
    assume(allocations)
    chosen = draw(st.lists(st.sampled_from(allocations), min_size=2, max_size=10))
    holders = [draw(member(market, a, draw(st.sampled_from(("mm1", "mm2"))))) for a in chosen]
    return market, holders, draw(st.sampled_from((3, 4))), draw(st.sampled_from(("mm1", "mm2")))


@pytest.mark.parametrize("in_milp", [False, True], ids=["bound-only", "in-milp"])
@settings(max_examples=40, deadline=None)
@given(sequence=sequences(), data=st.data())
def test_a_challenge_model_keeps_answering_like_the_reference_across_holders(
    in_milp, sequence, data
):
    market, holders, attempt, maker = sequence
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(challenge, "CYCLE_ROWS_IN_MILP", in_milp)
        answers_like_the_reference(market, holders, attempt, maker, data)


def test_an_lp_optimum_that_is_an_allocation_answers_without_a_milp(monkeypatch):
    # Against one request held at its value, the re-proposal earns nothing; the challenge
    # LP's optimum serves other requests whole, is an allocation, earns the LP bound, and
    # so is the answer: no MILP. Without LP points the MILP finds the same answer.
    requests = tuple(Request(f"t{k}", 0.5, (), 1) for k in range(5))
    pairs = (("t1", "t2"), ("t1", "t3"), ("t2", "t3"), ("t3", "t4"))
    market = Market(
        requests, (Node("n0", cost=0.0),), tuple(Conflict(a, b, "market") for a, b in pairs), ()
    )
    for held in ("t0", "t3", "t4"):
        model = answers_like_the_reference(market, [holding(held, 0.5)], 3, "mm1")
        assert (model.lp_points, model.bound_certified, model.milp_solves) == (1, 1, 0)
        monkeypatch.setattr(challenge, "LP_POINTS", False)
        model = answers_like_the_reference(market, [holding(held, 0.5)], 3, "mm1")
        assert (model.lp_points, model.milp_solves) == (0, 1)
        monkeypatch.setattr(challenge, "LP_POINTS", True)
