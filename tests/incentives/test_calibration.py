from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercat.errors import InvalidParameterError
from mercat.incentives import calibration as cal

targets = st.fractions(min_value=Fraction(1, 10_000), max_value=Fraction(9_999, 10_000))
rates = st.fractions(min_value=0, max_value=1)
penalties = st.fractions(min_value=Fraction(1, 100), max_value=100)


@given(targets, penalties)
def test_reward_makes_expected_loss_zero_exactly_at_target(target, penalty):
    reward = cal.reward_for_target(target, penalty)
    assert cal.expected_loss_per_task(target, penalty, reward) == 0
    assert cal.calibrated_expected_loss(target, target, penalty) == 0
    assert cal.break_even_failure_rate(penalty, reward) == target


@given(rates, targets, penalties)
def test_eq7_equals_eq4_with_calibrated_reward_and_has_the_right_sign(rate, target, penalty):
    reward = cal.reward_for_target(target, penalty)
    loss = cal.calibrated_expected_loss(rate, target, penalty)
    assert loss == cal.expected_loss_per_task(rate, penalty, reward)
    assert (loss > 0) == (rate > target)
    assert (loss < 0) == (rate < target)


@given(st.floats(1e-4, 0.9999), st.integers(1, 12))
def test_asset_target_inverts_eq1_for_identical_assets(target, n):
    fa = cal.asset_failure_target(target, n)
    assert 0 < fa <= target
    assert cal.task_failure_probability([fa] * n) == pytest.approx(target, rel=1e-9)


def test_asset_target_of_the_seed():
    # F_t = 1% over 4 assets: 0.2509%, the simulator's individual_failure_rate_target
    assert cal.asset_failure_target(0.01, 4) == pytest.approx(1 - 0.99**0.25, rel=1e-15)
    assert cal.asset_failure_target(0.01, 4) == pytest.approx(0.0025094, abs=1e-7)


def test_eq1_with_combinations_is_exact_on_fractions():
    rates = {"a": Fraction(1, 10), "b": Fraction(1, 5), "c": Fraction(0)}
    combos = {frozenset({"a", "b"}): Fraction(1, 2), frozenset({"a", "c"}): Fraction(1, 3)}
    # the task runs a and b only: the (a, c) combination does not apply
    value = cal.task_failure_probability_of(["a", "b"], rates, combos)
    assert value == 1 - Fraction(9, 10) * Fraction(4, 5) * Fraction(1, 2)


def test_calibrate_reports_everything():
    out = cal.calibrate(0.2, 4, 1.0, task_failure_rate=0.3)
    assert out["reward"] == pytest.approx(0.25)
    assert out["break_even_task_failure_rate"] == pytest.approx(0.2)
    assert out["expected_loss_at_rate"] == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cal.reward_for_target(0.0), "open interval"),
        (lambda: cal.reward_for_target(1.0), "open interval"),
        (lambda: cal.reward_for_target(0.1, -1), "penalty must be > 0"),
        (lambda: cal.asset_failure_target(0.1, 2.5), "integer"),
        (lambda: cal.asset_failure_target(0.1, 0), ">= 1"),
        (lambda: cal.task_failure_probability([0.1, 1.5]), r"asset_failure_rates\[1\]"),
        (lambda: cal.task_failure_probability_of(["a", "a"], {"a": 0.1}), "duplicates"),
        (lambda: cal.task_failure_probability_of(["a", "z"], {"a": 0.1}), "no failure rate"),
        (
            lambda: cal.task_failure_probability_of(["a"], {"a": 0.1}, {frozenset({"a"}): 0.1}),
            "fewer than two",
        ),
        (lambda: cal.expected_loss_per_task(float("nan")), "finite"),
        (lambda: cal.reward_for_target("0.1"), "must be a number"),
    ],
)
def test_bad_input_is_rejected_with_a_specific_message(call, message):
    with pytest.raises(InvalidParameterError, match=message):
        call()
