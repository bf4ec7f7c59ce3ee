import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mercat.scenarios import collective_metrics as m
from mercat.scenarios.collective_run import RunRecord


def naive_moving_average(x, w):
    return np.array([x[max(0, i - w + 1) : i + 1].mean() for i in range(len(x))])


@given(arrays(np.bool_, st.integers(1, 300)), st.integers(1, 50))
def test_moving_average_is_the_trailing_mean_with_warm_up(values, window):
    assert np.allclose(m.moving_average(values, window), naive_moving_average(values, window))


def record(failed, removed_fa=(), kept_fa=(), tp=0, fp=0):
    n = len(removed_fa) + len(kept_fa)
    return RunRecord(
        failed=np.array(failed, dtype=bool),
        live_assets=np.full(len(failed), len(kept_fa), dtype=np.int32),
        failure_rate=np.array([*removed_fa, *kept_fa]),
        created_at=np.zeros(n, dtype=np.int32),
        removed_at=np.array([1] * len(removed_fa) + [-1] * len(kept_fa), dtype=np.int32),
        stake=np.ones(n),
        tasks_run=np.ones(n, dtype=np.int32),
        tasks_failed=np.zeros(n, dtype=np.int32),
        true_positives=tp,
        false_positives=fp,
        combination_members=np.zeros((0, 2), dtype=np.int32),
        combination_rates=np.zeros(0),
    )


def test_precision_is_one_without_removals_and_averaged_over_runs():
    runs = [record([0] * 10), record([0] * 10, [0.5, 0.001], tp=1, fp=1)]
    assert runs[0].removal_precision == 1.0
    assert m.removal_precision(runs) == pytest.approx(0.75)


def test_table_failure_rate_drops_the_last_window():
    failed = [1] * 5 + [0] * 5
    runs = [record(failed), record(failed)]
    curve = naive_moving_average(np.array(failed, float), 3)
    assert m.table_failure_rate(runs, window=3) == pytest.approx(curve[:-3].mean())
    assert m.whole_run_failure_rate(runs) == 0.5
    assert m.final_window_failure_rate(runs, window=3) == 0.0


def test_removal_by_bin_counts_every_asset_once():
    runs = [record([0], removed_fa=[0.505, 0.9], kept_fa=[0.001, 0.5])]
    bins = m.removal_by_bin(runs, bin_width=0.5)
    assert bins["assets"].tolist() == [1, 3]
    assert bins["removed"].tolist() == [0, 2]
    assert bins["proportion"][1] == pytest.approx(2 / 3)
