"""The VCG standard auction on arrays: optimum against the plain MILP and brute force,
Clarke payments against brute force, certificates, individual rationality, truthfulness."""

import numpy as np
import pytest
from scipy.optimize import linprog

from mercat.clearing.vcg.colgen import ColumnPool, column_generation
from mercat.clearing.vcg.exact import exact_certificate, solve_welfare
from mercat.clearing.vcg.instance import (
    check_assignment,
    seed003_standard_auction,
    standard_auction,
)
from mercat.clearing.vcg.mechanism import (
    AllocationState,
    PaymentResult,
    _refill_without,
    allocate,
    clarke_payments,
    payments_from,
    split_users,
    vcg_auction,
)
from mercat.clearing.vcg.reference import brute_force_clarke, brute_force_optimum, plain_milp
from mercat.errors import InvalidParameterError


def small_auction(seed, n_max=6, m_max=3):
    """Seed-003-like bids and demands; half the time on a quarter grid (exact ties, exactly
    full providers), capacities from nothing to more than everyone needs."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, n_max + 1))
    m = int(rng.integers(1, m_max + 1))
    if seed % 2:
        bids = rng.integers(3, 6, n) / 4
        demands = rng.integers(1, 5, n) / 4
        capacities = rng.integers(0, 7, m) / 4
    else:
        bids = rng.uniform(0.75, 1.25, n)
        demands = 1.0 - rng.random(n)
        capacities = rng.uniform(0.0, 1.2, m) * demands.sum() / m
    return standard_auction(bids, demands, capacities)


@pytest.mark.parametrize("seed", range(40))
def test_optimum_equals_brute_force_and_plain_milp(seed):
    auction = small_auction(seed)
    state = allocate(auction)
    expected = brute_force_optimum(auction)
    assert state.proven_optimal and state.gap == 0.0
    assert check_assignment(auction, state.assignment) == pytest.approx(expected, abs=1e-9)
    assert state.welfare == pytest.approx(expected, abs=1e-9)
    assert plain_milp(auction).welfare == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_optimum_equals_plain_milp_on_seed_setup(seed):
    auction = seed003_standard_auction(20 + 4 * seed, 4, seed)
    reference = plain_milp(auction, time_limit=30)
    state = allocate(auction)
    assert reference.proven_optimal and state.proven_optimal
    assert state.welfare == pytest.approx(reference.welfare, abs=1e-8)


@pytest.mark.parametrize("seed", range(20))
def test_clarke_payments_equal_brute_force(seed):
    auction = small_auction(seed)
    outcome = vcg_auction(auction.bids, auction.demands, auction.capacities, workers=0)
    expected = brute_force_clarke(auction, outcome.assignment)
    assert outcome.payments_exact
    np.testing.assert_allclose(outcome.payments, expected, atol=1e-9)
    np.testing.assert_array_equal(outcome.payment_lower, outcome.payments)
    np.testing.assert_array_equal(outcome.payment_upper, outcome.payments)


@pytest.mark.parametrize("seed", range(3))
def test_clarke_payments_equal_plain_milp_re_solves(seed):
    auction = seed003_standard_auction(24, 4, seed)
    outcome = vcg_auction(auction.bids, auction.demands, auction.capacities, workers=0)
    w_star = plain_milp(auction).welfare
    for i in np.flatnonzero(outcome.assignment >= 0):
        without = plain_milp(auction, exclude=int(i)).welfare
        assert outcome.payments[i] == pytest.approx(
            without - (w_star - auction.values[i]), abs=1e-8
        )


@pytest.mark.parametrize("seed", range(30))
def test_individually_rational_and_losers_pay_nothing(seed):
    auction = small_auction(seed, n_max=9, m_max=4)
    outcome = vcg_auction(auction.bids, auction.demands, auction.capacities, workers=0)
    served = outcome.assignment >= 0
    assert np.all(outcome.payments >= 0.0)
    assert np.all(outcome.payments <= auction.values + 1e-12)
    assert np.all(outcome.payments[~served] == 0.0)


def utility(auction, outcome, user):
    served = outcome.assignment[user] >= 0
    return (auction.values[user] if served else 0.0) - outcome.payments[user]


@pytest.mark.parametrize("seed", range(12))
def test_no_sampled_misreport_raises_utility(seed):
    rng = np.random.default_rng(1000 + seed)
    auction = small_auction(seed, n_max=8, m_max=3)
    truthful = vcg_auction(auction.bids, auction.demands, auction.capacities, workers=0)
    for _ in range(6):
        user = int(rng.integers(auction.n_users))
        bids = auction.bids.copy()
        bids[user] *= rng.uniform(0.5, 1.5) if rng.random() < 0.8 else rng.choice([0.0, 3.0])
        lied = vcg_auction(bids, auction.demands, auction.capacities, workers=0)
        assert utility(auction, lied, user) <= utility(auction, truthful, user) + 1e-9


@pytest.mark.parametrize("seed", range(15))
def test_any_duals_give_an_upper_bound(seed):
    auction = small_auction(seed, n_max=8)
    rng = np.random.default_rng(seed)
    pi = rng.uniform(0.0, 1.0, auction.n_users) * auction.values
    certificate = exact_certificate(auction, pi, np.ones(auction.n_users, bool), 10**7)
    assert certificate.bound >= brute_force_optimum(auction) - 1e-9


def plain_lp_bound(auction):
    """The assignment MILP's LP relaxation: x_ij in [0, 1]."""
    n, m = auction.n_users, auction.n_providers
    users = np.kron(np.eye(n), np.ones(m))  # Σ_j x_ij ≤ 1
    loads = np.kron(auction.demands, np.eye(m))  # Σ_i d_i x_ij ≤ C_j
    result = linprog(
        -np.repeat(auction.values, m),
        A_ub=np.vstack([users, loads]),
        b_ub=np.concatenate([np.ones(n), auction.capacities]),
        bounds=(0, 1),
        method="highs",
    )
    return -result.fun


def test_column_generation_bound_is_tighter_than_the_plain_lp():
    auction = seed003_standard_auction(60, 8, 1)
    result = column_generation(ColumnPool(auction))
    optimum = allocate(auction).welfare
    assert result.converged
    assert optimum - 1e-9 <= result.certificate.bound < plain_lp_bound(auction) - 1e-3


def test_payments_do_not_depend_on_grouping_or_order():
    auction = seed003_standard_auction(40, 4, 5)
    state = allocate(auction)
    winners = state.winners
    together = clarke_payments(state, winners)
    parts = [clarke_payments(state, subset[::-1]) for subset in split_users(winners, 3)]
    for part in parts:
        for user, low, high in zip(
            part.users, part.others_optimum_lower, part.others_optimum_upper, strict=True
        ):
            k = int(np.flatnonzero(together.users == user)[0])
            assert low == together.others_optimum_lower[k]
            assert high == together.others_optimum_upper[k]


def test_process_pool_gives_the_same_payments():
    auction = seed003_standard_auction(30, 4, 2)
    here = vcg_auction(auction.bids, auction.demands, auction.capacities, workers=0)
    pooled = vcg_auction(auction.bids, auction.demands, auction.capacities, groups=2)
    np.testing.assert_array_equal(here.payments, pooled.payments)
    np.testing.assert_array_equal(here.assignment, pooled.assignment)


def test_certified_gap_mode_keeps_a_valid_bound():
    auction = seed003_standard_auction(150, 8, 3)
    solution = solve_welfare(ColumnPool(auction), target_gap=1e-3)
    exact = allocate(auction)
    assert solution.gap <= 1e-3
    assert solution.welfare <= exact.welfare + 1e-9 <= solution.bound + 2e-9


def test_unproven_payments_are_intervals_that_hold_the_clarke_payment():
    auction = small_auction(4, n_max=6)
    exact_state = allocate(auction)
    exact = payments_from(exact_state, [clarke_payments(exact_state, exact_state.winners)])
    # The same allocation, but as if neither W* nor the W*_{-i} had been proven.
    slack = 0.05
    state = AllocationState(
        **{**exact_state.__dict__, "bound": exact_state.welfare + slack, "proven_optimal": False}
    )
    truth = clarke_payments(exact_state, exact_state.winners)
    loose = PaymentResult(
        truth.users,
        truth.others_optimum_lower - slack / 2,
        truth.others_optimum_upper + slack,
        np.zeros(truth.users.shape[0], dtype=bool),
        truth.seconds,
    )
    outcome = payments_from(state, [loose])
    assert not outcome.payments_exact and outcome.payment_uncertainty > 0
    assert np.all(outcome.payment_lower <= exact.payments + 1e-12)
    assert np.all(exact.payments <= outcome.payment_upper + 1e-12)
    assert np.all(outcome.payment_lower <= outcome.payments)
    assert np.all(outcome.payments <= auction.values + 1e-12)


@pytest.mark.parametrize(
    ("bids", "demands", "capacities"),
    [
        ([1.0, -1.0], [0.5, 0.5], [1.0]),
        ([1.0, 1.0], [0.5, 0.0], [1.0]),
        ([1.0], [0.5, 0.5], [1.0]),
        ([1.0], [0.5], [-1.0]),
        ([1.0], [0.5], []),
        ([np.nan], [0.5], [1.0]),
        ([[1.0]], [[0.5]], [1.0]),
        (["x"], [0.5], [1.0]),
    ],
)
def test_bad_auctions_are_refused(bids, demands, capacities):
    with pytest.raises(InvalidParameterError):
        vcg_auction(bids, demands, capacities)


@pytest.mark.parametrize(
    "options",
    [{"groups": 0}, {"workers": -1}, {"time_limit": 0.0}, {"target_gap": 1.5}, {"groups": 1.5}],
)
def test_bad_options_are_refused(options):
    with pytest.raises(InvalidParameterError):
        vcg_auction([1.0], [0.5], [1.0], **options)


def test_bad_payment_users_are_refused():
    state = allocate(small_auction(2))
    with pytest.raises(InvalidParameterError):
        clarke_payments(state, [state.auction.n_users])


def test_an_auction_nobody_can_win():
    outcome = vcg_auction([1.0, 1.2], [0.5, 0.7], [0.0, 0.1], workers=0)
    assert outcome.proven_optimal and outcome.welfare == 0.0
    assert np.all(outcome.assignment == -1) and np.all(outcome.payments == 0.0)


def test_an_unproven_allocation_charges_the_clarke_payment_of_the_best_known_optima():
    # Hand-made certificates with every number inside its clip range: W = 3 found, W* <= 3.3;
    # winner 0 (value 2) has 2.0 <= W*_{-0} <= 2.2. It is charged W*_{-0}'s lower estimate
    # minus what the others get in the allocation, 2.0 - (3 - 2) = 1.0; the Clarke payment
    # lies in [2.0 - (3.3 - 2), 2.2 - (3 - 2)] = [0.7, 1.2]. Winner 1 (value 1): 2.4 - 2 = 0.4
    # in [0.1, 0.6]. The loser pays nothing.
    auction = standard_auction([1.0, 1.0, 0.5], [2.0, 1.0, 1.0], [2.0, 1.0])
    state = AllocationState(
        auction=auction,
        assignment=np.array([0, 1, -1]),
        welfare=3.0,
        bound=3.3,
        proven_optimal=False,
        pool_providers=np.zeros(0, dtype=np.int64),
        pool_members=(),
        time_limit=1.0,
        target_gap=0.1,
        seconds=0.0,
    )
    results = PaymentResult(
        np.array([0, 1]),
        others_optimum_lower=np.array([2.0, 2.4]),
        others_optimum_upper=np.array([2.2, 2.6]),
        proven=np.array([False, False]),
        seconds=np.zeros(2),
    )
    outcome = payments_from(state, [results])
    np.testing.assert_allclose(outcome.payments, [1.0, 0.4, 0.0], atol=1e-12)
    np.testing.assert_allclose(outcome.payment_lower, [0.7, 0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(outcome.payment_upper, [1.2, 0.6, 0.0], atol=1e-12)
    assert not outcome.payments_exact
    # Proven after all: the interval closes on the charge.
    proven = AllocationState(**{**state.__dict__, "bound": 3.0, "proven_optimal": True})
    exact = payments_from(
        proven, [PaymentResult(results.users, *([np.array([2.0, 2.4])] * 2), np.ones(2, bool),
                               results.seconds)]
    )  # fmt: skip
    assert exact.payments_exact
    np.testing.assert_allclose(exact.payments, [1.0, 0.4, 0.0], atol=1e-12)
    # A proven allocation with one W*_{-i} unproven: the payments are not exact.
    half = PaymentResult(results.users, *([np.array([2.0, 2.4])] * 2), np.array([True, False]),
                         results.seconds)  # fmt: skip
    assert not payments_from(proven, [half]).payments_exact
    np.testing.assert_array_equal(exact.payment_lower, exact.payments)
    np.testing.assert_array_equal(exact.payment_upper, exact.payments)


def test_a_gap_run_charges_winners_inside_their_intervals_and_not_at_the_clips():
    # target_gap 0.01 stops column generation before the proof (deterministically: no time
    # limit is reached; the multiple-knapsack solver proves this market at once, hence
    # solver="colgen"); on this market the charges lie strictly between 0 and the bids, where
    # they are W*_{-i}'s best known value minus the others' welfare in the allocation.
    auction = seed003_standard_auction(40, 4, 2)
    state = allocate(auction, target_gap=0.01, solver="colgen")
    assert not state.proven_optimal
    results = clarke_payments(state, state.winners)
    outcome = payments_from(state, [results])
    winners = state.winners
    values = auction.values[winners]
    charged = outcome.payments[winners]
    assert not outcome.payments_exact
    np.testing.assert_allclose(
        charged, results.others_optimum_lower - (state.welfare - values), atol=1e-12
    )
    assert np.all((charged > 0) & (charged < values))
    assert np.all(outcome.payment_lower[winners] <= charged)
    assert np.all(charged <= outcome.payment_upper[winners])


def test_the_incumbent_without_a_winner_refills_its_provider_with_the_best_idle_users():
    # Provider 0 (capacity 1) serves user 0 (demand 1); users 1-3 are idle. Without user 0,
    # the freed unit goes to the best knapsack of the idle users: 1 and 2 (0.5 + 0.5, worth
    # 0.9 + 0.8), not 3 (demand 1, worth 1.5). Provider 1 keeps user 4.
    auction = standard_auction([1.0, 1.8, 1.6, 1.5, 1.0], [1.0, 0.5, 0.5, 1.0, 0.3], [1.0, 0.3])
    state = AllocationState(
        auction=auction,
        assignment=np.array([0, -1, -1, -1, 1]),
        welfare=1.3,
        bound=1.3,
        proven_optimal=False,
        pool_providers=np.zeros(0, dtype=np.int64),
        pool_members=(),
        time_limit=1.0,
        target_gap=0.0,
        seconds=0.0,
    )
    refilled = _refill_without(state, 0)
    np.testing.assert_array_equal(refilled, [-1, 0, 0, -1, 1])
    assert check_assignment(auction, refilled) == pytest.approx(0.9 + 0.8 + 0.3)
    # A loser leaves the allocation as it is.
    np.testing.assert_array_equal(_refill_without(state, 3), state.assignment)
