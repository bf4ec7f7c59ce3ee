"""Attempt 4's best challenge split at the kink (`posted_price_regimes`): the formula it rests
on, its answers against the reference's MILP and against brute force, and h(p)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mercat.clearing.posted_price.challenge import ChallengeModel, own_margin
from mercat.clearing.posted_price.proposal import Standing
from mercat.clearing.posted_price.reference import best_offer_by_enumeration
from mercat.clearing.posted_price.regimes import RegimeSplit
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import mechanism_for
from mercat.market.brute_force import valid_allocations
from mercat.market.economics import welfare
from tests.clearing.posted_price.test_posted_price_challenge import drawn_candidates
from tests.clearing.posted_price.test_posted_price_response import TICK, member, same_gain
from tests.strategies import markets


@st.composite
def situations(draw):
    """A small market without resources (where a node conflicts by being used), a holder
    serving someone, and the maker who responds."""
    market = draw(markets(max_requests=4, max_nodes=3, max_resources=0))
    allocations = [a for a in valid_allocations(market) if a.shares]
    assume(allocations)
    holder = draw(member(market, draw(st.sampled_from(allocations)), "mm1"))
    maker = draw(st.sampled_from(("mm1", "mm2")))
    return market, Standing((holder,)), maker


def split_of(market, maker):
    reference = BestResponder(market, mechanism_for(4), maker, TICK)
    model = ChallengeModel(market, 4, TICK, reference.encoding())
    assert model.split is not None
    return reference, model


@settings(max_examples=80, deadline=None)
@given(situations())
def test_the_gain_is_the_formula_at_the_kink(situation):
    """gain(α) = K - A + W(α) - Σ_C δ_p + min(a(D), τ) for every conflicting α, where
    `offer_for` prices it from the mechanism's rules."""
    market, standing, maker = situation
    (holder,) = standing.members
    reference, model = split_of(market, maker)
    kink = model.split.kink(holder)
    assume(kink is not None)
    constant = own_margin(holder, maker)
    for allocation in valid_allocations(market):
        offer = reference.offer(allocation, standing)
        if offer is None or offer.kind != "challenge":
            continue
        on = model.point(holder, allocation)[kink.columns]
        kept = on > 0.5
        dropped = math.fsum(kink.a[~kept])
        formula = (
            constant
            - kink.total
            + welfare(market, allocation)
            - math.fsum(kink.delta[kept])
            + min(dropped, kink.tau)
        )
        assert formula == pytest.approx(offer.gain, abs=1e-9)


@settings(max_examples=120, deadline=None)
@given(situations(), st.data())
def test_a_split_answer_is_the_best_challenge(situation, data):
    """Whenever the split answers, its offer earns what the reference's MILP and the
    enumeration of V find; a split that cannot decide says so (None)."""
    market, standing, maker = situation
    (holder,) = standing.members
    reference, model = split_of(market, maker)
    expected = reference.challenge(standing)

    def price(allocation):
        return reference.offer(allocation, standing)

    candidates = drawn_candidates(market, holder, price, data)
    got = model.split.best(holder, own_margin(holder, maker), candidates, price)
    if got is not None:
        assert same_gain(got, expected), (got, expected)
        everything = best_offer_by_enumeration(market, standing, mechanism_for(4), maker, TICK)
        if everything is not None and everything.kind == "challenge":
            assert got.gain == pytest.approx(everything.gain, abs=1e-7)


@settings(max_examples=80, deadline=None)
@given(situations())
def test_the_cutoff_row_keeps_every_point_above_the_known_gain(situation):
    """A2's MILP carries the row objective · x ≥ known (`RegimeSplit._restricted`'s
    `cutoff_row`). In either regime, with the row or without, the restricted MILP finds the
    regime's optimum whenever that beats `known`; with the row it finds nothing otherwise."""
    market, standing, maker = situation
    (holder,) = standing.members
    _, model = split_of(market, maker)
    split = model.split
    kink = split.kink(holder)
    assume(kink is not None)
    nobody = np.zeros(kink.a.size, dtype=bool)  # keeping none, A2 is seldom empty
    for kept, at_most_tau in itertools.product((kink.a >= kink.tau, nobody), (True, False)):
        regime, _, rows = split._regime(kink, kept, keep_at_most_tau=at_most_tau)
        bound = split._bound(regime, rows)
        if bound is None:
            continue  # the regime is empty
        free = split._restricted(regime, bound, -1e9)  # nothing fixed, nothing cut
        if free is None:  # feasible in the LP only (A2's a(D) ≥ τ met by fractions)
            assert split._restricted(regime, bound, -1e9, cutoff_row=True) is None
            continue
        optimum = free[0]
        for known in (optimum - 0.5, optimum - 1e-6, optimum + 1e-6, optimum + 0.5):
            plain = split._restricted(regime, bound, known)
            cut = split._restricted(regime, bound, known, cutoff_row=True)
            if optimum > known:
                assert plain is not None and plain[0] == pytest.approx(optimum, abs=1e-9)
                assert cut is not None and cut[0] == pytest.approx(optimum, abs=1e-9)
                assert float(regime.objective @ cut[1]) == pytest.approx(optimum, abs=1e-9)
            else:
                assert cut is None
                assert plain is None or plain[0] <= known + 1e-9


def test_the_split_answers_every_holder_with_the_reference_gain():
    """Holders of the welfare optimum of an 8 × 4 market, one tick inside every
    participant's terms and with one participant's slack 10 to 50 ticks wider (a_p ≥ τ):
    the split answers each with the reference MILP's gain. With every slack one tick, no
    participant is big and the split leaves the challenge to the one MILP."""
    from mercat.clearing.posted_price.proposal import Proposal
    from mercat.market.generators import random_market

    market = random_market(3, 8, 4, n_resources=0, conflict_rate=0.1)
    best = max(valid_allocations(market), key=lambda a: welfare(market, a))
    values = {t: market.request(t).value for t in best.served_requests}
    costs = {n: market.node(n).cost for n in best.used_nodes}
    reference, model = split_of(market, "mm2")
    answered = 0
    for extra in (0.0, 10 * TICK, 20 * TICK, 50 * TICK):
        first = min(values)
        pay = {t: v - TICK - (extra if t == first else 0.0) for t, v in values.items()}
        rew = {n: c + TICK for n, c in costs.items()}
        holder = Proposal("mm1", best, pay, rew, dict(values), dict(costs))
        standing = Standing((holder,))

        def price(allocation, standing=standing):
            return reference.offer(allocation, standing)

        got = model.split.best(holder, own_margin(holder, "mm2"), [(price(best), best)], price)
        if extra == 0.0:
            assert got is None
            continue
        assert got is not None
        assert same_gain(got, reference.challenge(standing))
        answered += 1
    assert answered == 3 and model.split.answered == 3


@settings(max_examples=40, deadline=None)
@given(markets(max_requests=4, max_nodes=3, max_resources=0))
def test_the_welfare_without_a_participant_is_bounded_then_proven(market):
    """h(p): the LP bound is at least the best welfare of an allocation without p, and the
    proven value (asked for by a `beat` below the LP bound) is that welfare; both are
    kept."""
    reference = BestResponder(market, mechanism_for(4), "mm1", TICK)
    model = ChallengeModel(market, 4, TICK, reference.encoding())
    split = RegimeSplit(model)
    base = model.base
    participants = [(t, j, True) for t, j in base.served_columns.items()]
    participants += [(n, j, False) for n, j in base.used_columns.items()]
    for name, column, is_request in participants:
        without = [
            a
            for a in valid_allocations(market)
            if (name not in a.served_requests if is_request else name not in a.used_nodes)
        ]
        best = max(welfare(market, a) for a in without)  # serving no one is always there
        cheap = split.without(column)  # from the welfare LP's duals
        assert cheap >= best - 1e-7 and split.without(column) == cheap  # kept
        assert split.without(column, beat=-math.inf, effort=1) == cheap
        lp = split.without(column, beat=-math.inf, effort=2)  # its own LP
        assert best - 1e-7 <= lp <= cheap
        assert split.without(column, beat=-math.inf) == pytest.approx(best, abs=1e-7)
        assert split.without(column) == pytest.approx(best, abs=1e-7)  # the proven one kept
    columns = np.array([column for _, column, _ in participants], dtype=np.int64)
    if len(columns):
        assert np.isfinite(split.bounds_without(columns)).all()
