import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import InvalidParameterError
from mercat.incentives import ruin as r


def brute_force_ruin(problem: r.RuinProblem) -> float:
    """Enumerate every outcome sequence of a short horizon, in exact arithmetic."""
    s0, p, rew = problem.initial_stake, Fraction(repr(problem.penalty)), problem.reward
    level, f = problem.ruin_level, Fraction(repr(problem.failure_rate))
    total = Fraction(0)
    for outcomes in itertools.product((False, True), repeat=problem.horizon):  # True = failure
        stake, prob, ruined = s0, Fraction(1), False
        for failed in outcomes:
            prob *= f if failed else 1 - f
            stake += -p if failed else rew
            if (stake <= level) if problem.inclusive else (stake < level):
                ruined = True  # keep multiplying: each full sequence is counted once
        if ruined:
            total += prob
    return float(total)


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize(
    ("x", "f", "target"),
    [
        (1, 0.1, 0.2),
        (2, 0.3, 0.2),
        (1.25, 0.2, 0.2),
        (3, 0.5, 0.5),
        (2, 0.05, 0.01),
        (0.5, 0.1, 0.2),
    ],
)
def test_exact_equals_enumeration_of_every_path(x, f, target, inclusive):
    # ties S = P occur here (R = 0.25, 1): the exact thresholds must decide them as rationals
    problem = r.RuinProblem(x, f, target, horizon=12, inclusive=inclusive)
    assert r.ruin_exact(problem).probability == pytest.approx(brute_force_ruin(problem), abs=1e-14)


def test_ties_are_decided_exactly():
    # x = 2, P = 1, R = 0.25: a first failure lands exactly on S = P
    strict = r.RuinProblem(2, 0.5, 0.2, horizon=2)
    inclusive = r.RuinProblem(2, 0.5, 0.2, horizon=2, inclusive=True)
    # strict: only two failures (S = 0) ruin; inclusive: any first failure (S = 1) does
    assert r.ruin_exact(strict).probability == 0.25
    assert r.ruin_exact(inclusive).probability == 0.5


small = dict(horizon=st.integers(1, 300), target=st.sampled_from([0.05, 0.1, 0.2, 0.3]))


@settings(max_examples=40, deadline=None)
@given(x=st.floats(0, 12), dx=st.floats(0.01, 5), f=st.floats(0, 1), **small)
def test_exact_ruin_is_monotone_in_stake(x, dx, f, horizon, target):
    lo = r.ruin_exact(r.RuinProblem(x, f, target, horizon)).probability
    hi = r.ruin_exact(r.RuinProblem(x + dx, f, target, horizon)).probability
    assert hi <= lo + 1e-12


@settings(max_examples=40, deadline=None)
@given(x=st.floats(0, 12), f=st.floats(0, 0.99), df=st.floats(0.001, 0.5), **small)
def test_exact_ruin_is_monotone_in_failure_rate(x, f, df, horizon, target):
    lo = r.ruin_exact(r.RuinProblem(x, f, target, horizon)).probability
    hi = r.ruin_exact(r.RuinProblem(x, min(1.0, f + df), target, horizon)).probability
    assert lo <= hi + 1e-12


@settings(max_examples=30, deadline=None)
@given(x=st.floats(0, 15), f=st.floats(0, 0.5), target=st.sampled_from([0.05, 0.2, 0.3]))
def test_lundberg_bounds_the_exact_finite_horizon_probability(x, f, target):
    problem = r.RuinProblem(x, f, target, horizon=2_000)
    assert r.ruin_exact(problem).probability <= r.ruin_lundberg(problem).probability + 1e-12


@pytest.mark.parametrize("claims", ["bernoulli", "poisson"])
@pytest.mark.parametrize(("x", "f"), [(3, 0.15), (6, 0.19), (2, 0.25), (10, 0.21)])
def test_monte_carlo_covers_the_exact_value(x, f, claims):
    level = 0.0 if claims == "poisson" else None
    problem = r.RuinProblem(x, f, 0.2, horizon=1_000, claims=claims, level=level)
    exact = r.ruin_exact(problem).probability
    mc = r.ruin_monte_carlo(problem, samples=20_000, seed=11, confidence=0.999)
    assert mc.low <= exact <= mc.high


def test_diffusion_approximation_is_close_where_the_walk_is_diffusive():
    problem = r.RuinProblem(10, 0.19, 0.2, horizon=10_000)
    assert r.ruin_diffusion(problem).probability == pytest.approx(
        r.ruin_exact(problem).probability, rel=0.1
    )


def test_curve_is_cumulative_and_ends_at_the_probability():
    est = r.ruin_exact(r.RuinProblem(4, 0.2, 0.2, horizon=500))
    assert np.all(np.diff(est.curve) >= -1e-15)
    assert est.curve[-1] == est.probability


def test_above_target_ruin_tends_to_one_and_below_it_falls_exponentially():
    far = r.ruin_exact(r.RuinProblem(10, 0.3, 0.2, horizon=10_000)).probability
    assert far > 1 - 1e-9
    values = [
        r.ruin_exact(r.RuinProblem(x, 0.1, 0.2, horizon=10_000)).probability for x in (4, 8, 12)
    ]
    ratios = values[1] / values[0], values[2] / values[1]
    assert ratios[0] < 1e-2 and ratios[0] == pytest.approx(ratios[1], rel=0.05)


def test_adjustment_coefficient_solves_its_equation():
    problem = r.RuinProblem(5, 0.1, 0.2, horizon=10)
    theta = r.adjustment_coefficient(problem)
    assert theta > 0
    assert 0.9 * np.exp(-theta * 0.25) + 0.1 * np.exp(theta) == pytest.approx(1, abs=1e-12)
    assert r.adjustment_coefficient(r.RuinProblem(5, 0.25, 0.2, horizon=10)) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(stake_ratio=-1), "stake_ratio"),
        (dict(failure_rate=1.2), "failure_rate"),
        (dict(task_target=0), "task_target"),
        (dict(horizon=0), "horizon"),
        (dict(horizon=10.5), "horizon"),
        (dict(claims="gamma"), "claims"),
    ],
)
def test_bad_problems_are_rejected(kwargs, message):
    base = dict(stake_ratio=5, failure_rate=0.1, task_target=0.2, horizon=100)
    with pytest.raises(InvalidParameterError, match=message):
        r.RuinProblem(**(base | kwargs))


def test_unknown_method_is_rejected():
    with pytest.raises(InvalidParameterError, match="method"):
        r.ruin_probability(r.RuinProblem(5, 0.1, 0.2, 100), method="magic")


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(0, 12),
    f=st.floats(0, 1),
    target=st.sampled_from([0.01, 0.2, 0.5]),
    horizon=st.integers(1, 400),
    inclusive=st.booleans(),
    claims=st.sampled_from(["bernoulli", "poisson"]),
)
def test_compiled_dp_equals_its_numpy_twin(x, f, target, horizon, inclusive, claims):
    problem = r.RuinProblem(x, f, target, horizon, inclusive=inclusive, claims=claims)
    fast, ref = r.ruin_exact(problem), r.ruin_exact_reference(problem)
    assert np.allclose(fast.curve, ref.curve, rtol=1e-12, atol=1e-15)


def test_a_stake_beyond_any_failure_count_is_never_ruined():
    # k_max would not fit in 64 bits; n tasks fail at most n times, so it is capped at n.
    problem = r.RuinProblem(stake_ratio=1e308, failure_rate=0.1, task_target=0.05, horizon=50)
    assert problem.max_failures(np.array([1, 10, 50])).tolist() == [1, 10, 50]
    assert r.ruin_probability(problem, "exact").probability == 0.0
