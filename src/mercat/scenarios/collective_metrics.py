"""Metrics of collective-incentive runs, exactly as seed 000 (and its simulator) define them.

- Task failure rate of a run over time: a trailing moving average of the task outcomes with
  window w (500 in the simulator, 100 in the Fig. 4 caption); the first w-1 entries
  average what is there so far (the simulator's `moving_average`).
- Fig. 4: the median and the 95th percentile of that curve over runs, task by task.
- Table I's task failure rate: the mean over runs, then over tasks, of the moving average,
  leaving out the last w tasks (the simulator's `np.mean(np.mean(curves, 0)[:-w])`).
- Removal precision: per run TP/(TP+FP) (1 when nothing was removed), averaged over runs.
  A removed asset is a true positive when Fa > F_a^target.
- Fig. 5: removal proportion per bin of Fa and per bin of the task failure rate an asset
  experienced (its failed tasks over its tasks; 0 for an asset that ran none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mercat import validation as check
from mercat.scenarios.collective_run import RunRecord


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` entries along the last axis, shorter at the start."""
    window = check.integer("window", window, minimum=1)
    x = np.asarray(values, dtype=np.float64)
    total = np.cumsum(x, axis=-1)
    out = np.empty_like(total)
    n = x.shape[-1]
    head = min(window, n)
    out[..., :head] = total[..., :head] / np.arange(1, head + 1)
    if n > window:
        out[..., window:] = (total[..., window:] - total[..., :-window]) / window
    return out


def failure_matrix(runs: Sequence[RunRecord]) -> np.ndarray:
    """bool[runs, tasks]: which tasks failed in which run."""
    return np.stack([r.failed for r in runs])


def failure_rate_percentiles(
    runs: Sequence[RunRecord], window: int = 500, percentiles: Sequence[float] = (50, 95)
) -> np.ndarray:
    """float[len(percentiles), tasks]: percentiles over runs of the moving-average curves."""
    curves = moving_average(failure_matrix(runs), window)
    return np.percentile(curves, list(percentiles), axis=0)


def table_failure_rate(runs: Sequence[RunRecord], window: int = 500) -> float:
    """Table I's reading: mean over runs, then over tasks, dropping the last `window` tasks."""
    curve = moving_average(failure_matrix(runs), window).mean(axis=0)
    kept = curve[:-window] if curve.size > window else curve
    return float(kept.mean())


def whole_run_failure_rate(runs: Sequence[RunRecord]) -> float:
    """Fraction of all tasks of all runs that failed (an alternative reading of Table I)."""
    return float(failure_matrix(runs).mean())


def final_window_failure_rate(runs: Sequence[RunRecord], window: int = 500) -> float:
    """Mean failure rate over the last `window` tasks (another alternative reading)."""
    return float(failure_matrix(runs)[:, -window:].mean())


def removal_precision(runs: Sequence[RunRecord]) -> float:
    """Mean over runs of TP/(TP+FP), a run without removals counting as 1."""
    return float(np.mean([r.removal_precision for r in runs]))


def experienced_failure_rate(run: RunRecord) -> np.ndarray:
    """Per asset: failed tasks / tasks run (0 for assets that ran no task)."""
    rate = np.zeros(run.tasks_run.size)
    ran = run.tasks_run > 0
    rate[ran] = run.tasks_failed[ran] / run.tasks_run[ran]
    return rate


def removal_by_bin(
    runs: Sequence[RunRecord], quantity: str = "failure_rate", bin_width: float = 0.01
) -> dict[str, np.ndarray]:
    """Assets and removed assets per bin of Fa (`failure_rate`) or of `experienced` Ft.

    Returns bin edges, counts of all and of removed assets (over all runs) and the
    removal proportion (NaN for empty bins).
    """
    check.choice("quantity", quantity, ("failure_rate", "experienced"))
    check.positive("bin_width", bin_width)
    if quantity == "failure_rate":
        values = np.concatenate([r.failure_rate for r in runs])
    else:
        values = np.concatenate([experienced_failure_rate(r) for r in runs])
    removed = np.concatenate([r.removed_at >= 0 for r in runs])
    edges = np.linspace(0.0, 1.0, round(1 / bin_width) + 1)
    total, _ = np.histogram(values, bins=edges)
    gone, _ = np.histogram(values[removed], bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        proportion = np.where(total > 0, gone / np.maximum(total, 1), np.nan)
    return {"edges": edges, "assets": total, "removed": gone, "proportion": proportion}


def summary(runs: Sequence[RunRecord], window: int = 500) -> dict[str, float]:
    """The headline numbers of a batch of runs."""
    percentiles = failure_rate_percentiles(runs, window)
    removed = np.array([r.true_positives + r.false_positives for r in runs])
    return {
        "runs": len(runs),
        "removal_precision_pct": 100 * removal_precision(runs),
        "task_failure_rate_pct": 100 * table_failure_rate(runs, window),
        "whole_run_failure_rate_pct": 100 * whole_run_failure_rate(runs),
        "final_window_failure_rate_pct": 100 * final_window_failure_rate(runs, window),
        "final_median_failure_rate_pct": 100 * float(percentiles[0, -1]),
        "final_p95_failure_rate_pct": 100 * float(percentiles[1, -1]),
        "removed_assets_mean": float(removed.mean()),
        "true_positives": int(sum(r.true_positives for r in runs)),
        "false_positives": int(sum(r.false_positives for r in runs)),
        "final_live_assets_mean": float(np.mean([r.live_assets[-1] for r in runs])),
        "initial_mean_failure_rate_pct": 100
        * float(np.mean([r.failure_rate[r.created_at == 0].mean() for r in runs])),
    }
