"""Seed 000's collective-incentive market ("Collective Incentives"), any engine, as tables.

Parameters are `CollectiveConfig`'s fields (the collective rule by name, a plug-in's too,
with its `rule_options`), the engine (fast, reference, pipeline or gpu) and the moving-average
window of the Table I reading. Tables:

- `runs`: per run, removal precision, the Table I task failure rate (the mean of the
  moving average, dropping the last `window` tasks), the whole-run and last-window failure
  rates, removals (true and false positives), live and created assets. Their means over
  runs are the point's summary (`mercat simulate collective`'s numbers), with standard
  errors.
- `steps`: per run and window of `step_every` tasks (default 500): the failure rate within
  the window, live assets and removals so far at its end (Fig. 4's curves, per run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mercat.workbench.simulation import Parameter, PointTables, Simulation, Steps, mean_and_se

_P = Parameter


class CollectiveSimulation(Simulation):
    """Seed 000's market of staked assets under a collective rule (Table I, Fig. 4-5)."""

    name = "collective"
    title = "Seed 000 (Collective Incentives): assets, tasks, a collective rule"
    step = "task"
    default_step_every = 500
    headline = ("removal_precision_pct", "task_failure_rate_pct", "removed_assets_mean")
    step_measures = ("failure_rate_pct", "live_assets", "removed")
    parameters = (
        _P("mechanism", "coll-sr", "str", "collective rule: free, coll-stake, coll-rep, "
           "coll-sr, a plug-in's name or module:Class"),
        _P("rule_options", {}, "table", "a plug-in rule's options"),
        _P("engine", "fast", "str", "fast (numba), reference (plain Python), pipeline (the "
           "round pipeline on an in-memory book) or gpu (CUDA, numba-cuda)",
           choices=("fast", "reference", "pipeline", "gpu")),
        _P("tasks_per_round", 1, "int", "pipeline engine: tasks drawn per round", minimum=1),
        _P("assets", 100, "int", "N_a, initial assets", minimum=1),
        _P("tasks", 10_000, "int", "N_t, tasks per run", minimum=1),
        _P("assets_per_task", 4, "int", "|A_t|", minimum=1),
        _P("alpha", 0.05, "float", "power-law parameter of asset failure rates"),
        _P("stake", 10.0, "float", "S0, initial stake"),
        _P("penalty", 1.0, "float", "P"),
        _P("target", 0.01, "float", "F_t^target, target task failure rate"),
        _P("replacement_interval", 500, "int", "T, tasks between replacements", minimum=1),
        _P("failure_rate_sampling", "pool", "str", "pool (the simulator) or direct",
           choices=("pool", "direct")),
        _P("pool_size", 100_000, "int", "draws in the failure-rate pool", minimum=1),
        _P("removal_inclusive", True, "bool", "remove at S <= P (the simulator) or S < P"),
        _P("clamp", None, "bool?", "force the stake clamp on or off (auto: the rule's own)"),
        _P("floor_ratio", 0.001, "float", "clamp floor as a fraction of S0"),
        _P("replacement", "one-per-interval", "str", "one-per-interval or refill",
           choices=("one-per-interval", "refill")),
        _P("free_moves_stakes", False, "bool", "Free moves stakes (the simulator's bookkeeping)"),
        _P("combinations_per_asset", 0, "int", "failure-prone combinations per new asset",
           minimum=0),
        _P("combination_size", 2, "int", "assets per combination", minimum=2),
        _P("window", 500, "int", "moving-average window of the failure-rate readings",
           minimum=1),
    )  # fmt: skip

    _RUN_ONLY = ("engine", "tasks_per_round", "window")

    def build(self, params: Mapping[str, Any]) -> Any:
        from mercat.scenarios.collective_config import CollectiveConfig
        from mercat.scenarios.collective_sim import check_engine

        fields = {k: v for k, v in params.items() if k not in (*self._RUN_ONLY, "runs", "seed")}
        config = CollectiveConfig(**fields)
        check_engine(config, params["engine"])
        return config, params["engine"], params["tasks_per_round"], params["window"]

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        from mercat.scenarios import collective_metrics as metrics
        from mercat.scenarios.collective_sim import simulate

        cfg, engine, tasks_per_round, window = config
        result = simulate(cfg, runs=runs, seed=seed, engine=engine, tasks_per_round=tasks_per_round)
        records = result.runs
        failed = metrics.failure_matrix(records)
        curves = metrics.moving_average(failed, window)
        kept = curves[:, :-window] if curves.shape[1] > window else curves
        removed = np.array([r.true_positives + r.false_positives for r in records])
        table = pd.DataFrame(
            {
                "run": np.arange(runs),
                "removal_precision_pct": [100 * r.removal_precision for r in records],
                "task_failure_rate_pct": 100 * kept.mean(axis=1),
                "whole_run_failure_rate_pct": 100 * failed.mean(axis=1),
                "final_window_failure_rate_pct": 100 * failed[:, -window:].mean(axis=1),
                "removed": removed,
                "true_positives": [r.true_positives for r in records],
                "false_positives": [r.false_positives for r in records],
                "final_live_assets": [int(r.live_assets[-1]) for r in records],
                "assets_created": [r.failure_rate.size for r in records],
                "initial_mean_failure_rate_pct": [
                    100 * float(r.failure_rate[r.created_at == 0].mean()) for r in records
                ],
            }
        )
        summary = summary_of(records, failed, curves, window)
        for measure in ("removal_precision_pct", "task_failure_rate_pct"):
            summary[measure.replace("_pct", "_se_pct")] = mean_and_se(table[measure])[1]
        summary["assets_created_mean"] = float(table["assets_created"].mean())
        tables = {"runs": table}
        if steps.keep:
            tables["steps"] = _windows(records, failed, steps.every)
        return PointTables(summary, tables)


def _windows(records: Any, failed: np.ndarray, every: int) -> pd.DataFrame:
    """Per run and window of `every` tasks (the last one may be shorter)."""
    runs, tasks = failed.shape
    ends = np.arange(every, tasks + every, every)
    ends[-1] = tasks
    starts = np.concatenate([[0], ends[:-1]])
    totals = np.add.reduceat(failed.astype(np.int64), starts, axis=1)
    rate = 100 * totals / (ends - starts)
    live = np.stack([r.live_assets[ends - 1] for r in records])
    gone = np.stack([_removed_by(r.removed_at, ends) for r in records])
    return pd.DataFrame(
        {
            "run": np.repeat(np.arange(runs), ends.size),
            "task": np.tile(ends, runs),
            "failure_rate_pct": rate.ravel(),
            "live_assets": live.ravel().astype(np.int64),
            "removed": gone.ravel(),
        }
    )


def _removed_by(removed_at: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many assets were removed by the end of each window."""
    times = np.sort(removed_at[removed_at >= 0])
    return np.searchsorted(times, ends, side="right").astype(np.int64)


def summary_of(records: Any, failed: np.ndarray, curves: np.ndarray, window: int) -> dict:
    """`collective_metrics.summary` from the failure matrix and moving averages computed
    once (the reference recomputes them per reading, and the percentiles of every task to
    keep the last). The same operations on the same arrays: a test holds the two equal."""
    mean_curve = curves.mean(axis=0)
    kept = mean_curve[:-window] if mean_curve.size > window else mean_curve
    median, p95 = np.percentile(curves[:, -1], [50, 95])
    removed = np.array([r.true_positives + r.false_positives for r in records])
    return {
        "runs": len(records),
        "removal_precision_pct": 100 * float(np.mean([r.removal_precision for r in records])),
        "task_failure_rate_pct": 100 * float(kept.mean()),
        "whole_run_failure_rate_pct": 100 * float(failed.mean()),
        "final_window_failure_rate_pct": 100 * float(failed[:, -window:].mean()),
        "final_median_failure_rate_pct": 100 * float(median),
        "final_p95_failure_rate_pct": 100 * float(p95),
        "removed_assets_mean": float(removed.mean()),
        "true_positives": int(sum(r.true_positives for r in records)),
        "false_positives": int(sum(r.false_positives for r in records)),
        "final_live_assets_mean": float(np.mean([r.live_assets[-1] for r in records])),
        "initial_mean_failure_rate_pct": 100
        * float(np.mean([r.failure_rate[r.created_at == 0].mean() for r in records])),
    }
