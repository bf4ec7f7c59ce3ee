"""The fast path's challenge model against the reference: the tighter encoding is V, the
bound and the fixing never lose the optimum, the kept LP re-solves to what a fresh one
finds, and the best challenge earns what the reference's MILP earns."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mercat.clearing.highs import LpRelaxation, solve_max
from mercat.clearing.posted_price.challenge import ChallengeModel, strengthened
from mercat.clearing.posted_price.fixing import fix_columns, lagrangian_bound
from mercat.clearing.posted_price.proposal import Standing
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import mechanism_for
from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import encode
from mercat.market.economics import welfare
from mercat.market.generators import random_market
from tests.clearing.posted_price.test_posted_price_response import TICK, member, same_gain
from tests.strategies import markets


def violation(model, x):
    """The largest amount by which x breaks a row or a column bound of the model."""
    ax = model.matrix @ x
    rows = np.maximum(model.row_lower - ax, ax - model.row_upper)
    cols = np.maximum(model.col_lower - x, x - model.col_upper)
    return max(float(np.max(rows, initial=0.0)), float(np.max(cols, initial=0.0)))


@settings(max_examples=60, deadline=None)
@given(markets(max_requests=4, max_nodes=3))
def test_the_tighter_encoding_is_v(market):
    tight = strengthened(encode(market), market)
    allocations = list(valid_allocations(market))
    for allocation in allocations:
        x = tight.encode_allocation(allocation, market)
        assert violation(tight, x) <= 1e-9, allocation
        assert tight.objective @ x == pytest.approx(welfare(market, allocation), abs=1e-9)
    # ... and nothing else: its optimum is V's best welfare, for a second objective too.
    result = solve_max(tight)
    assert result.proven
    best = max(welfare(market, a) for a in allocations)
    assert result.objective == pytest.approx(best, abs=1e-7)
    assert tight.decode(result.x, market) in allocations


def test_the_tighter_encoding_has_a_tighter_lp():
    # Two requests in a node conflict on a half-opened node: V's LP may serve half of each
    # there (x_a + x_b ≤ 1); the lifted row x_a + x_b ≤ u_n allows half of one.
    market = random_market(3, 40, 12, n_resources=0, conflict_rate=0.05)
    plain = encode(market)
    tight = strengthened(plain, market)
    assert set(tight.used_columns) == {n for (_, n) in plain.pair_columns}
    optimum = solve_max(plain).objective
    gaps = []
    for model in (plain, tight):
        relaxation = LpRelaxation(model)
        gaps.append(relaxation.solve().objective - optimum)
    assert solve_max(tight).objective == pytest.approx(optimum, abs=1e-7)
    assert 0 <= gaps[1] < gaps[0]


@st.composite
def situations(draw):
    """A small market, a holder serving someone in it (attempt 3 or 4: the attempts whose
    challenge the model solves), and the maker who responds. Drawn directly rather than
    filtered from the response tests' situations, of which most would be rejected."""
    market = draw(markets(max_requests=4, max_nodes=3))
    allocations = [a for a in valid_allocations(market) if a.shares]
    assume(allocations)
    holder = draw(member(market, draw(st.sampled_from(allocations)), "mm1"))
    attempt = draw(st.sampled_from((3, 4)))
    maker = draw(st.sampled_from(("mm1", "mm2")))
    return market, Standing((holder,)), attempt, maker


def challenge_models(market, standing, attempt, maker):
    mechanism = mechanism_for(attempt)
    reference = BestResponder(market, mechanism, maker, TICK)
    model = ChallengeModel(market, attempt, TICK, reference.encoding())
    return reference, model


def drawn_candidates(market, holder, price, data):
    """The candidates a challenge model is handed: the re-proposal of the holder's
    allocation (always a challenge) and up to three other allocations that conflict with
    the holder, each with its offer."""
    pool = [a for a in valid_allocations(market) if price(a) is not None]
    chosen = data.draw(st.lists(st.sampled_from(pool), max_size=3)) if pool else []
    return [(price(a), a) for a in dict.fromkeys([holder.allocation, *chosen])]


@settings(max_examples=80, deadline=None)
@given(situations(), st.data())
def test_the_challenge_model_finds_the_reference_challenge(situation, data):
    market, standing, attempt, maker = situation
    assert standing.serves_anyone
    (holder,) = standing.members
    reference, model = challenge_models(market, standing, attempt, maker)
    expected = reference.challenge(standing)

    def price(allocation):
        return reference.offer(allocation, standing)

    candidates = drawn_candidates(market, holder, price, data)
    milp, constant = model.model(holder, maker)
    for offer, allocation in candidates:
        # A candidate's column vector is feasible and worth exactly its gain.
        x = model.point(holder, allocation)
        assert violation(milp, x) <= 1e-9
        assert milp.objective @ x + constant == pytest.approx(offer.gain, abs=1e-9)
    got = model.best(holder, maker, candidates, price)
    assert same_gain(got, expected), (got, expected)
    # Without candidates the model solves the whole MILP.
    assert same_gain(model.best(holder, maker, [], price), expected)


@settings(max_examples=60, deadline=None)
@given(situations(), st.data())
def test_fixing_never_loses_the_optimum(situation, data):
    market, standing, attempt, maker = situation
    assert standing.serves_anyone
    (holder,) = standing.members
    _, model = challenge_models(market, standing, attempt, maker)
    milp, _ = model.model(holder, maker)
    # The optimum over V (in a market without resources the MILP is written over the
    # projected encoding, and `solve` places its answer).
    full, best = model.solve(milp, None)
    assert full.proven and best is not None
    lp = LpRelaxation(milp).solve()
    bound = lagrangian_bound(milp, lp.duals)
    assert bound.value >= lp.objective - 1e-7  # the LP optimum, from its own duals
    assert bound.value >= full.objective - 1e-7
    # Any multipliers give a valid bound, not only the optimal ones.
    noise = data.draw(st.lists(st.floats(-1, 1), min_size=len(lp.duals), max_size=len(lp.duals)))
    assert lagrangian_bound(milp, lp.duals + np.array(noise)).value >= full.objective - 1e-7
    # Fix from the value of a feasible point: the restricted optimum is the optimum.
    allocation = data.draw(st.sampled_from([holder.allocation, best]))
    point = model.point(holder, allocation)
    known = milp.objective @ point
    lower, upper, _ = fix_columns(milp, bound, known)
    restricted_milp = dataclasses.replace(milp, col_lower=lower, col_upper=upper)
    restricted, _ = model.solve(restricted_milp, None)
    assert restricted.proven
    assert restricted.objective == pytest.approx(full.objective, abs=1e-7)
    if model.placement is None:
        # Started from the known point (as the challenge model does without presolve), the
        # solve is the cold one's.
        warm = solve_max(restricted_milp, initial=point)
        assert warm.proven
        assert warm.objective == pytest.approx(full.objective, abs=1e-7)
        assert warm.objective >= known - 1e-9


def test_the_kept_lp_re_solves_to_a_fresh_solve():
    market = random_market(5, 30, 10, n_resources=0, conflict_rate=0.05)
    tight = strengthened(encode(market), market)
    kept = LpRelaxation(tight)
    kept.solve()
    rng = np.random.default_rng(0)
    model = tight
    for _ in range(4):
        columns = rng.choice(tight.num_cols, size=20, replace=False)
        objective = model.objective.copy()
        objective[columns] -= rng.uniform(0, 1, size=20)
        kept.set_costs(columns, objective[columns])
        row = ({int(c): 1.0 for c in columns[:5]}, -math.inf, 2.0)
        kept.truncate(tight.num_cols, tight.num_rows)
        kept.append([-0.5], [0.0], [1.0], [row])
        model = dataclasses.replace(tight, objective=objective[: tight.num_cols]).extended(
            [row],
            objective=np.concatenate([objective[: tight.num_cols], [-0.5]]),
            col_lower=np.concatenate([tight.col_lower, [0.0]]),
            col_upper=np.concatenate([tight.col_upper, [1.0]]),
            integral=np.concatenate([tight.integral, [False]]),
        )
        assert kept.solve().objective == pytest.approx(LpRelaxation(model).solve().objective)
    assert kept.num_cols == tight.num_cols + 1 and kept.num_rows == tight.num_rows + 1
