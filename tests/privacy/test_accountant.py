"""Alg. 2's privacy bound: dp_accounting held to the exact closed form, and its monotonicity."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import InvalidParameterError
from mercat.privacy.accountant import (
    GaussianRuns,
    analytic_gaussian_epsilon,
    check_differential_privacy,
    epsilon_spent,
    noise_for_budget,
)


@settings(max_examples=60, deadline=None)
@given(
    z=st.floats(0.3, 30.0),
    rounds=st.integers(1, 2000),
    delta=st.sampled_from([1e-9, 1e-7, 1e-5, 1e-3, 1e-2]),
)
def test_the_readable_twin_equals_the_library_exact_form(z, rounds, delta):
    ours = analytic_gaussian_epsilon(z, delta, rounds)
    library = epsilon_spent(GaussianRuns(z, rounds), delta, "exact")
    assert ours == pytest.approx(library, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize(("z", "rounds"), [(1.0, 1), (2.0, 10), (1.5, 100), (5.0, 1000)])
def test_the_pld_accountant_composes_to_the_exact_epsilon(z, rounds):
    # PLD composes `rounds` discretized releases numerically; the exact value comes from the
    # closed form of one release with z / sqrt(rounds). Agreement checks both.
    pld = epsilon_spent(GaussianRuns(z, rounds), 1e-5, "pld")
    exact = analytic_gaussian_epsilon(z, 1e-5, rounds)
    assert pld == pytest.approx(exact, abs=1e-3)
    assert pld >= exact * (1 - 1e-9)  # pessimistic (to float rounding), never optimistic


def test_a_single_gaussian_release_matches_balle_and_wang():
    # z = 1, δ = 1e-5: ε = 4.3772 by the analytic Gaussian mechanism. The classical bound
    # σ >= sqrt(2 ln(1.25/δ)) / ε would need z = 1.107 for that ε: the exact form is tighter.
    eps = analytic_gaussian_epsilon(1.0, 1e-5)
    assert eps == pytest.approx(4.37718, abs=1e-5)
    assert math.sqrt(2 * math.log(1.25 / 1e-5)) / eps > 1.0


def test_rdp_is_an_upper_bound_of_pld_on_sampled_runs():
    runs = GaussianRuns(1.1, 200, 0.05)
    pld = epsilon_spent(runs, 1e-5, "pld")
    rdp = epsilon_spent(runs, 1e-5, "rdp")
    assert pld < rdp < 1.3 * pld


def test_epsilon_falls_with_noise_and_sampling_and_grows_with_rounds():
    base = epsilon_spent(GaussianRuns(1.0, 50, 0.1), 1e-5, "rdp")
    assert epsilon_spent(GaussianRuns(2.0, 50, 0.1), 1e-5, "rdp") < base
    assert epsilon_spent(GaussianRuns(1.0, 50, 0.05), 1e-5, "rdp") < base
    assert epsilon_spent(GaussianRuns(1.0, 100, 0.1), 1e-5, "rdp") > base
    # amplification by sampling: the sampled run spends far less than the same un-sampled one
    assert base < 0.5 * epsilon_spent(GaussianRuns(1.0, 50, 1.0), 1e-5)


def test_auto_takes_the_exact_form_without_sampling_and_pld_with_it():
    plain = GaussianRuns(1.5, 20)
    assert epsilon_spent(plain, 1e-5) == epsilon_spent(plain, 1e-5, "exact")
    sampled = GaussianRuns(1.5, 20, 0.2)
    assert epsilon_spent(sampled, 1e-5) == epsilon_spent(sampled, 1e-5, "pld")


def test_the_check_says_whether_the_run_fits_the_budget():
    runs = GaussianRuns(1.0, 10)
    spent = epsilon_spent(runs, 1e-5)
    assert check_differential_privacy(runs, spent * 1.001, 1e-5).compliant
    verdict = check_differential_privacy(runs, spent * 0.999, 1e-5)
    assert not verdict.compliant
    assert verdict.epsilon_actual == spent


@pytest.mark.parametrize(
    ("rounds", "rate", "accountant"), [(1, 1.0, "auto"), (30, 1.0, "auto"), (40, 0.1, "auto")]
)
def test_calibrated_noise_is_the_least_that_fits(rounds, rate, accountant):
    z = noise_for_budget(2.0, 1e-5, rounds, rate, accountant)
    assert check_differential_privacy(GaussianRuns(z, rounds, rate), 2.0, 1e-5).compliant
    smaller = GaussianRuns(z * 0.99, rounds, rate)
    assert not check_differential_privacy(smaller, 2.0, 1e-5).compliant


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: GaussianRuns(0.0), "noise multiplier"),
        (lambda: GaussianRuns(1e-300), "noise multiplier"),
        (lambda: GaussianRuns(True), "noise multiplier"),
        (lambda: GaussianRuns(1.0, 10**10), "rounds"),
        (lambda: GaussianRuns(1.0, 1, True), "sampling rate"),
        (lambda: noise_for_budget(1e300, 1e-5), "at most"),
        (lambda: epsilon_spent(GaussianRuns(0.1, 50, 0.5), 1e-5, "pld"), "gigabytes"),
        (lambda: GaussianRuns(math.inf), "noise multiplier"),
        (lambda: GaussianRuns(1.0, 0), "rounds"),
        (lambda: GaussianRuns(1.0, 2.5), "rounds"),
        (lambda: GaussianRuns(1.0, 1, 0.0), "sampling rate"),
        (lambda: GaussianRuns(1.0, 1, 1.5), "sampling rate"),
        (lambda: epsilon_spent(GaussianRuns(1.0), 0.0), "delta"),
        (lambda: epsilon_spent(GaussianRuns(1.0), 1.0), "delta"),
        (lambda: epsilon_spent(GaussianRuns(1.0), 1e-5, "moments"), "accountant"),
        (lambda: epsilon_spent(GaussianRuns(1.0, 5, 0.5), 1e-5, "exact"), "closed form"),
        (lambda: check_differential_privacy(GaussianRuns(1.0), -1.0, 1e-5), "epsilon"),
        (lambda: noise_for_budget(math.inf, 1e-5), "epsilon"),
        (lambda: noise_for_budget(1.0, 1e-5, rounds=0), "rounds"),
    ],
)
def test_bad_input_is_refused_with_a_specific_message(call, message):
    with pytest.raises(InvalidParameterError, match=message):
        call()


def test_the_rdp_accountant_gives_the_stack_notes_reference_value():
    # ../shared/STACK.md: noise multiplier 1.0, sampling rate 0.01, 1000 steps, δ = 1e-5 gives
    # ε ≈ 2.10 by RDP; PLD, tighter, comes in below it.
    runs = GaussianRuns(1.0, 1000, 0.01)
    assert epsilon_spent(runs, 1e-5, "rdp") == pytest.approx(2.10, abs=0.005)
    assert epsilon_spent(runs, 1e-5, "pld") < 2.10


def test_auto_reports_the_rdp_bound_where_pld_would_need_gigabytes():
    # z = 0.1 on half the clients for 50 rounds spends thousands of ε; PLD's grid would take
    # 2 GB and 17 s, the RDP bound takes milliseconds and is still a valid upper bound.
    runs = GaussianRuns(0.1, 50, 0.5)
    verdict = check_differential_privacy(runs, 1.0, 1e-5)
    assert verdict.accountant == "rdp" and not verdict.compliant
    assert verdict.epsilon_actual == epsilon_spent(runs, 1e-5, "rdp") > 1000
    assert check_differential_privacy(GaussianRuns(1.0, 10, 0.1), 5.0, 1e-5).accountant == "pld"
    assert check_differential_privacy(GaussianRuns(1.0, 10), 5.0, 1e-5).accountant == "exact"


def test_a_whole_float_round_count_is_taken_as_an_integer():
    # JSON gives 2.0 for 2: dp_accounting refused the float count with a TypeError.
    as_float = check_differential_privacy(GaussianRuns(1.0, 2.0, 0.5), 5.0, 1e-5)
    assert as_float == check_differential_privacy(GaussianRuns(1.0, 2, 0.5), 5.0, 1e-5)
    assert GaussianRuns(1.0, 2.0).rounds == 2 and type(GaussianRuns(1.0, 2.0).rounds) is int


def test_a_subnormal_sampling_rate_falls_back_to_rdp_under_auto_and_is_one_error_under_pld():
    # PLD's grid takes a logarithm of infinities at q = 5e-324 (found by the node's
    # schemathesis run, where it answered 500); the RDP bound is still computable.
    from mercat.privacy.accountant import GaussianRuns, resolve_epsilon

    runs = GaussianRuns(noise_multiplier=20.0, rounds=1000, sampling_rate=5e-324)
    epsilon, used = resolve_epsilon(runs, 1e-5, "auto")
    assert used == "rdp" and 0.0 <= epsilon < 1e-6
    with pytest.raises(InvalidParameterError, match="cannot be computed"):
        resolve_epsilon(runs, 1e-5, "pld")
