"""The differential test: reference and compiled engines agree event for event."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import failure_rate_pool, simulate
from mercat.scenarios.rng import run_states

configs = st.builds(
    CollectiveConfig,
    mechanism=st.sampled_from(["free", "coll-stake", "coll-rep", "coll-sr"]),
    assets=st.integers(4, 14),
    tasks=st.integers(1, 600),
    assets_per_task=st.integers(2, 4),
    alpha=st.sampled_from([0.05, 0.1, 0.5]),
    stake=st.sampled_from([2.0, 3.0, 5.0]),
    target=st.sampled_from([0.01, 0.05, 0.2]),
    replacement_interval=st.integers(1, 60),
    failure_rate_sampling=st.sampled_from(["pool", "direct"]),
    pool_size=st.integers(1, 500),
    removal_inclusive=st.booleans(),
    replacement=st.sampled_from(["one-per-interval", "refill"]),
    free_moves_stakes=st.booleans(),
    combinations_per_asset=st.integers(0, 2),
    combination_size=st.just(2),
)


@settings(max_examples=40, deadline=None)
@given(configs, st.integers(0, 2**32))
def test_engines_agree_event_for_event(config, seed):
    fast = simulate(config, runs=2, seed=seed, engine="fast", record_picks=True).runs
    ref = simulate(config, runs=2, seed=seed, engine="reference", record_picks=True).runs
    for a, b in zip(fast, ref, strict=True):
        assert a.differences(b) == []


@pytest.mark.parametrize("mechanism", ["coll-stake", "coll-rep", "coll-sr", "free"])
def test_engines_agree_on_a_seed_sized_market(mechanism):
    config = CollectiveConfig(mechanism=mechanism, assets=100, tasks=3_000)
    fast = simulate(config, runs=2, seed=4, record_picks=True).runs
    ref = simulate(config, runs=2, seed=4, engine="reference", record_picks=True).runs
    for a, b in zip(fast, ref, strict=True):
        assert a.differences(b) == []


def test_results_do_not_depend_on_batching():
    config = CollectiveConfig(assets=20, tasks=1_000)
    whole = simulate(config, runs=7, seed=2).runs
    pieces = simulate(config, runs=7, seed=2, batch=3).runs
    assert all(a.differences(b) == [] for a, b in zip(whole, pieces, strict=True))


def test_overflowing_runs_are_rerun_with_room():
    # S0 = 2 and a top-up whenever fewer than 4 remain: far more assets than the first guess
    config = CollectiveConfig(mechanism="coll-stake", assets=4, tasks=3_000, stake=2.0, alpha=1.0)
    fast = simulate(config, runs=2, seed=1).runs
    ref = simulate(config, runs=2, seed=1, engine="reference").runs
    assert fast[0].failure_rate.size > 200
    assert all(a.differences(b) == [] for a, b in zip(fast, ref, strict=True))


@settings(max_examples=15, deadline=None)
@given(configs.filter(lambda c: c.rule.removal), st.integers(0, 1000))
def test_a_removed_asset_is_never_selected_again(config, seed):
    for run in simulate(config, runs=2, seed=seed, record_picks=True).runs:
        for asset in np.flatnonzero(run.removed_at >= 0):
            later = run.picks[run.removed_at[asset] :]  # picks of tasks after its removal
            assert asset not in later


@settings(max_examples=15, deadline=None)
@given(configs, st.integers(0, 1000))
def test_invariants_of_every_run(config, seed):
    for run in simulate(config, runs=2, seed=seed, record_picks=True).runs:
        rule = config.rule
        live_at_end = run.removed_at < 0
        assert live_at_end.sum() == run.live_assets[-1]
        if rule.removal:
            assert np.all(run.stake[live_at_end] > 0)
            assert np.all(run.stake >= 0)
        if not rule.moves_stakes:
            assert np.all(run.stake == config.stake)
        if rule.stake_cap is not None:
            assert np.all(run.stake <= rule.stake_cap) and np.all(run.stake >= rule.stake_floor)
        assert run.tasks_run.sum() == config.tasks * config.assets_per_task
        # each pick is a distinct asset that existed when the task ran
        assert all(len(set(row)) == len(row) for row in run.picks)
        assert run.true_positives + run.false_positives == (run.removed_at >= 0).sum()


def test_failure_rates_follow_the_power_law():
    config = CollectiveConfig(alpha=0.05)
    pool = failure_rate_pool(config, seed=3)
    # mean α/(α+1) = 4.76%; the standard error of a 100,000-draw mean is ~0.05%
    assert pool.mean() == pytest.approx(0.05 / 1.05, abs=4 * pool.std() / np.sqrt(pool.size))
    from scipy import stats

    assert stats.kstest(pool, stats.powerlaw(0.05).cdf).pvalue > 1e-4
    assert failure_rate_pool(config.with_(failure_rate_sampling="direct"), 3) is None


def test_same_seed_same_runs_other_seed_other_runs():
    config = CollectiveConfig(assets=20, tasks=500)
    a, b = simulate(config, runs=2, seed=5).runs, simulate(config, runs=2, seed=5).runs
    c = simulate(config, runs=2, seed=6).runs
    assert a[0].differences(b[0]) == []
    assert a[0].differences(c[0]) != []


def test_run_states_are_per_run():
    assert not np.array_equal(run_states(1, 2)[0], run_states(1, 2)[1])
