"""The multiple-knapsack solver (`mulknap`) against its readable twin, brute force and the
plain MILP; its integer units against the market's feasibility rule; its certificates under
node limits; its warm starts; the mechanism on it against column generation."""

import contextlib
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.clearing.vcg import mulknap
from mercat.clearing.vcg.instance import (
    capacity_slack,
    check_assignment,
    seed003_standard_auction,
    standard_auction,
)
from mercat.clearing.vcg.mechanism import allocate, clarke_payments, payments_from
from mercat.clearing.vcg.mulknap import refill, solve_mulknap
from mercat.clearing.vcg.mulknap_reference import solve_reference
from mercat.clearing.vcg.reference import brute_force_clarke, brute_force_optimum, plain_milp
from mercat.clearing.vcg.units import SPARE, IntegerAuction, integer_auction
from mercat.errors import InvalidParameterError


def integer_market(profits, weights, capacities) -> IntegerAuction:
    return IntegerAuction(
        np.asarray(weights, dtype=np.int64),
        np.asarray(capacities, dtype=np.int64),
        np.asarray(profits, dtype=np.int64),
        1.0,
        1.0,
    )


def brute_force_units(units: IntegerAuction, excluded: int | None = None) -> int:
    """The optimum in integer units over every assignment (tiny markets only)."""
    best = 0
    choices = range(-1, units.n_providers)
    for assignment in itertools.product(choices, repeat=units.n_users):
        a = np.array(assignment, dtype=np.int64)
        if excluded is not None and a[excluded] >= 0:
            continue
        if units.fits(a):
            best = max(best, units.value(a))
    return best


@st.composite
def integer_markets(draw, n_max=7, m_max=3):
    """Small integer markets: ties in profit and weight, users that fit nowhere, providers
    of size 0, one provider much smaller than the rest (the bin-completion case)."""
    n = draw(st.integers(1, n_max))
    m = draw(st.integers(1, m_max))
    weights = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n))
    profits = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    capacities = draw(st.lists(st.integers(0, 25), min_size=m, max_size=m))
    return integer_market(profits, weights, capacities)


def check_result(units, result, excluded=None):
    assert units.fits(result.assignment)
    assert units.value(result.assignment) == result.value
    if excluded is not None:
        assert result.assignment[excluded] == -1
    assert result.bound >= result.value


@settings(max_examples=200, deadline=None)
@given(integer_markets())
def test_compiled_and_reference_equal_brute_force(units):
    expected = brute_force_units(units)
    result = solve_mulknap(units)
    check_result(units, result)
    assert result.proven and result.value == result.bound == expected
    twin = solve_reference(units)
    assert units.fits(twin.assignment) and units.value(twin.assignment) == twin.value
    assert twin.value == expected


@settings(max_examples=150, deadline=None)
@given(integer_markets(), st.data())
def test_without_a_user_warm_started_and_bounded(units, data):
    """W*_{-i}: from the full optimum minus i (its provider refilled), stopped at W*."""
    full = solve_mulknap(units)
    user = data.draw(st.integers(0, units.n_users - 1))
    expected = brute_force_units(units, excluded=user)
    without = full.assignment.copy()
    provider = int(without[user])
    without[user] = -1
    start = refill(units, without, provider, user) if provider >= 0 else without
    assert units.fits(start) and start[user] == -1
    assert units.value(start) >= units.value(without)
    result = solve_mulknap(units, excluded=user, incumbent=start, upper=full.value)
    check_result(units, result, excluded=user)
    assert result.value == expected
    cold = solve_mulknap(units, excluded=user)
    assert cold.proven and cold.value == expected
    assert solve_reference(units, excluded=user).value == expected


@settings(max_examples=80, deadline=None)
@given(integer_markets(n_max=9, m_max=4), st.integers(1, 6))
def test_node_limit_gives_a_valid_certificate(units, node_limit):
    expected = brute_force_units(units) if units.n_users <= 7 else solve_reference(units).value
    result = solve_mulknap(units, node_limit=node_limit)
    check_result(units, result)
    assert result.value <= expected <= result.bound
    if result.proven:
        assert result.value == result.bound == expected


@settings(max_examples=100, deadline=None)
@given(integer_markets(n_max=9, m_max=4), st.floats(0.01, 0.5))
def test_target_gap_is_respected(units, gap):
    expected = solve_reference(units).value
    result = solve_mulknap(units, target_gap=gap)
    check_result(units, result)
    assert result.value <= expected <= result.bound
    assert result.value >= (1 - gap) * expected - 1e-9


@contextlib.contextmanager
def aspiration(shift: int, growth: int, nodes: int):
    """The solver's aspiration windows set to (first window 2^-shift of the root's gap,
    growth, node budget), restored after."""
    saved = (mulknap.ASPIRATION_SHIFT, mulknap.ASPIRATION_GROWTH, mulknap.ASPIRATION_NODES)
    mulknap.ASPIRATION_SHIFT, mulknap.ASPIRATION_GROWTH, mulknap.ASPIRATION_NODES = (
        shift,
        growth,
        nodes,
    )
    try:
        yield
    finally:
        mulknap.ASPIRATION_SHIFT, mulknap.ASPIRATION_GROWTH, mulknap.ASPIRATION_NODES = saved


@settings(max_examples=100, deadline=None)
@given(
    integer_markets(n_max=8, m_max=3),
    st.integers(0, 12),
    st.integers(2, 4),
    st.sampled_from([1, 3, 10**6]),
    st.data(),
)
def test_aspiration_windows_never_cut_an_optimum(units, shift, growth, nodes, data):
    """A pass that finds nothing above its floor lowers the proven upper bound to that
    floor; were that wrong (a pass pruning an optimum, a floor taken for a value), the
    proven value would fall below brute force here, or a W*_{-i} stopped at W* would."""
    excluded = data.draw(st.sampled_from([None, *range(units.n_users)]))
    expected = brute_force_units(units, excluded=excluded)
    with aspiration(shift, growth, nodes):
        result = solve_mulknap(units, excluded=excluded)
        check_result(units, result, excluded=excluded)
        assert result.proven and result.value == result.bound == expected
        if excluded is not None:
            full = brute_force_units(units)
            bounded = solve_mulknap(units, excluded=excluded, upper=full)
            assert bounded.proven and bounded.value == expected
        limited = solve_mulknap(units, excluded=excluded, node_limit=data.draw(st.integers(1, 8)))
        check_result(units, limited, excluded=excluded)
        assert limited.value <= expected <= limited.bound


@pytest.mark.slow
def test_aspiration_passes_run_and_agree_with_the_ordinary_search():
    """On the seed's set-up at n = 150 the root does not prove the optimum: the aspiration
    passes run (several fresh trees) and reach the optimum of the ordinary search."""
    units = integer_auction(seed003_standard_auction(150, 8, 0))
    starts = []
    original = mulknap._Search.start

    def counted(self, floor):
        starts.append(floor)
        original(self, floor)

    mulknap._Search.start = counted
    try:
        with aspiration(10, 2, 10**6):
            aspired = solve_mulknap(units)
        passes = len(starts)
        with aspiration(10, 2, 0):
            ordinary = solve_mulknap(units)
    finally:
        mulknap._Search.start = original
    assert passes > 2, passes  # the root, at least one aspiration pass, the optimum
    assert aspired.proven and ordinary.proven
    assert aspired.value == ordinary.value
    assert units.fits(aspired.assignment) and units.value(aspired.assignment) == aspired.value


def test_small_provider_next_to_large_ones_by_bin_completion():
    """A provider the surrogate cannot see (Pisinger's user branching stalls on it)."""
    rng = np.random.default_rng(3)
    weights = rng.integers(50, 1000, 30)
    profits = (weights * rng.uniform(0.75, 1.25, 30)).astype(np.int64)
    units = integer_market(profits, weights, [4000, 3500, 130])
    result = solve_mulknap(units)
    check_result(units, result)
    assert result.proven and result.value == solve_reference(units).value
    assert result.stats["completions"] >= 1


def float_markets(seed, n_max=6, m_max=3):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, n_max + 1))
    m = int(rng.integers(1, m_max + 1))
    if seed % 2:  # quarter grid: exactly full providers, exact ties
        bids = rng.integers(3, 6, n) / 4
        demands = rng.integers(1, 5, n) / 4
        capacities = rng.integers(0, 7, m) / 4
    else:
        bids = rng.uniform(0.75, 1.25, n)
        demands = 1.0 - rng.random(n)
        capacities = rng.uniform(0.0, 1.2, m) * demands.sum() / m
    return standard_auction(bids, demands, capacities)


@pytest.mark.parametrize("seed", range(30))
def test_mechanism_on_mulknap_equals_brute_force_and_plain_milp(seed):
    auction = float_markets(seed)
    state = allocate(auction, solver="mulknap")
    assert state.units is not None
    expected = brute_force_optimum(auction)
    assert state.proven_optimal and state.gap == 0.0
    assert check_assignment(auction, state.assignment) == pytest.approx(expected, abs=1e-9)
    assert plain_milp(auction).welfare == pytest.approx(expected, abs=1e-9)
    outcome = payments_from(state, [clarke_payments(state, range(auction.n_users))])
    assert outcome.payments_exact
    expected_payments = brute_force_clarke(auction, state.assignment)
    np.testing.assert_allclose(outcome.payments, expected_payments, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_mulknap_and_column_generation_agree_on_seed_setup(seed):
    auction = seed003_standard_auction(40 + 10 * seed, 4, seed)
    fast = allocate(auction, solver="mulknap")
    previous = allocate(auction, solver="colgen")
    assert fast.proven_optimal and previous.proven_optimal
    assert fast.welfare == pytest.approx(previous.welfare, rel=1e-12)
    assert fast.welfare == pytest.approx(plain_milp(auction, time_limit=30).welfare, rel=1e-9)
    winners = fast.winners[:6]
    ours = payments_from(fast, [clarke_payments(fast, winners)])
    theirs = payments_from(previous, [clarke_payments(previous, winners)])
    assert ours.payments_exact and theirs.payments_exact
    np.testing.assert_allclose(ours.payments[winners], theirs.payments[winners], atol=1e-9)


def test_units_keep_every_exact_fit_and_nothing_the_market_refuses():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 4))
        demands = rng.uniform(1e-3, 1.0, n) * 10.0 ** rng.integers(-2, 4)
        capacities = rng.uniform(0.0, demands.sum(), m)
        auction = standard_auction(rng.uniform(0.5, 1.5, n), demands, capacities)
        units = integer_auction(auction)
        assert units is not None
        assignment = rng.integers(-1, m, n)
        load = np.bincount(assignment[assignment >= 0], demands[assignment >= 0], minlength=m)
        if units.fits(assignment):  # the market accepts it, with σ_j of its slack to spare
            assert np.all(load <= capacities + capacity_slack(capacities) * (1 - SPARE))
        if np.all(load <= capacities):  # an exact fit is never lost
            assert units.fits(assignment)


def test_units_keep_loads_inside_the_slack_the_market_grants():
    # Three demands of 3.7e-11 on a provider of capacity 0: the market's rule lets loads up to
    # 1e-9 through, so all three fit, in integers too (welfare Σ v_i·d_i of three users, not two).
    auction = standard_auction([0.25, 0.25, 0.25], [3.7e-11] * 3, [0.0])
    assert integer_auction(auction).fits(np.array([0, 0, 0]))
    assert allocate(auction, solver="mulknap").welfare == pytest.approx(3 * 0.25 * 3.7e-11)
    # A load in the middle of the slack fits; one past the limit does not.
    inside = standard_auction([1.0, 1.0], [0.5, 0.5 + 0.6e-9], [1.0])
    assert integer_auction(inside).fits(np.array([0, 0]))
    beyond = standard_auction([1.0, 1.0], [0.5, 0.5 + 1.1e-9], [1.0])
    assert not integer_auction(beyond).fits(np.array([0, 0]))


def test_units_on_a_market_that_exactly_fills_its_providers():
    auction = standard_auction([1.0, 1.0, 1.0], [0.1, 0.2, 0.3], [0.3, 0.3])
    units = integer_auction(auction)
    assert units.fits(np.array([0, 0, 1]))  # 0.1 + 0.2 is 0.30000000000000004 in floats
    state = allocate(auction, solver="mulknap")
    assert state.proven_optimal and state.welfare == pytest.approx(0.6)


def test_bad_options_and_incumbents_are_refused():
    units = integer_market([5, 4, 3], [3, 2, 2], [4])
    for options in (
        {"node_limit": 0},
        {"node_limit": True},
        {"target_gap": 1.0},
        {"target_gap": -0.1},
        {"excluded": 3},
        {"incumbent": np.array([0, 0, -1])},  # does not fit
        {"incumbent": np.array([0, -1])},  # wrong shape
        {"incumbent": np.array([2, -1, -1])},  # no such provider
        {"excluded": 0, "incumbent": np.array([0, -1, -1])},  # serves the excluded user
    ):
        with pytest.raises(InvalidParameterError):
            solve_mulknap(units, **options)
    with pytest.raises(InvalidParameterError):
        allocate(seed003_standard_auction(10, 2, 0), solver="simplex")


def test_a_node_limited_run_gives_intervals_that_hold_the_optima_and_ir_charges():
    """node_limit stops the search before its proofs (nodes, not clocks: deterministic);
    the allocation's certificate and every W*_{-i} interval hold the exact values."""
    auction = seed003_standard_auction(40, 4, 2)
    state = allocate(auction, solver="mulknap", node_limit=3)
    assert not state.proven_optimal
    exact = allocate(auction, solver="mulknap")
    assert exact.proven_optimal
    assert state.welfare <= exact.welfare <= state.bound
    results = clarke_payments(state, state.winners)
    outcome = payments_from(state, [results])
    assert not outcome.payments_exact
    units = state.units
    for k, user in enumerate(results.users):
        truth = solve_mulknap(units, excluded=int(user))
        assert truth.proven
        others = check_assignment(auction, truth.assignment)
        assert results.others_optimum_lower[k] <= others + 1e-12
        assert others <= results.others_optimum_upper[k] + 1e-12
    winners = state.winners
    charged = outcome.payments[winners]
    assert np.all((charged >= 0) & (charged <= auction.values[winners]))
    assert np.all(outcome.payment_lower[winners] <= charged)
    assert np.all(charged <= outcome.payment_upper[winners])
