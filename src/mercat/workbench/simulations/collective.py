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

With an `adversary` (or a counter-measure: `entry_bond`, `ramp_up_tasks`,
`reputation_half_life`), a point runs the adversarial engine
(`mercat.scenarios.collective_adversarial`, engine = "reference" only): each run twice on
the same seed, once with the adversary and once with its honest twin. `runs` then holds,
per run, the adversary's profit, its twin's and the difference (`adversary_gain`), the
identities it used, its deliberate failures, the stake honest assets lost on failed tasks it
ran, honest assets' mean profit and false removals, removal precision and the task failure
rate (with the twin's); the summary holds their means and standard errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mercat.errors import InvalidParameterError
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
        _P("adversary", "none", "str", "an adversary among the honest assets: none, honest, "
           "whitewasher, sybil, intermittent, collusion, a plug-in's name or module:Class "
           "(engine reference only)"),
        _P("adversary_options", {}, "table", "the adversary's options"),
        _P("entry_bond", 0.0, "float", "counter-measure: tokens every new identity forfeits",
           minimum=0),
        _P("ramp_up_tasks", 0, "int", "counter-measure: successes until a new identity has "
           "its full selection weight (0: off)", minimum=0),
        _P("reputation_half_life", 0.0, "float", "counter-measure: tasks for an owner's "
           "remembered penalties to halve (0: off)", minimum=0),
        _P("reputation_scale", 3.0, "float", "remembered penalties that halve an owner's "
           "selection weight"),
        _P("fee", 0.5, "float", "adversarial engine: tokens paid to each asset of a task",
           minimum=0),
        _P("work_cost", 0.3, "float", "adversarial engine: tokens doing a task's work costs "
           "an asset", minimum=0),
    )  # fmt: skip

    _RUN_ONLY = ("engine", "tasks_per_round", "window")
    _ADVERSARIAL = (
        "adversary",
        "adversary_options",
        "entry_bond",
        "ramp_up_tasks",
        "reputation_half_life",
        "reputation_scale",
        "fee",
        "work_cost",
    )

    def build(self, params: Mapping[str, Any]) -> Any:
        from mercat.scenarios.collective_config import CollectiveConfig
        from mercat.scenarios.collective_sim import check_engine

        skipped = (*self._RUN_ONLY, *self._ADVERSARIAL, "runs", "seed")
        fields = {k: v for k, v in params.items() if k not in skipped}
        config = CollectiveConfig(**fields)
        adversarial = _adversarial(params)
        check_engine(config, params["engine"], adversarial is not None)
        if adversarial is not None:
            return config, "adversarial", adversarial, params["window"]
        return config, params["engine"], params["tasks_per_round"], params["window"]

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        from mercat.scenarios import collective_metrics as metrics
        from mercat.scenarios.collective_sim import simulate

        cfg, engine, tasks_per_round, window = config
        if engine == "adversarial":
            return _adversarial_point(cfg, tasks_per_round, runs, seed, steps)
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


def _adversarial(params: Mapping[str, Any]) -> Any:
    """(the adversary's name and options, counter-measures, economics) when the point has an
    adversary or a counter-measure, else None; bad options fail here, before any run."""
    from mercat.scenarios.collective_adversarial import Economics
    from mercat.scenarios.collective_adversaries import adversary
    from mercat.scenarios.collective_countermeasures import CounterMeasures

    measures = CounterMeasures(
        entry_bond=params["entry_bond"],
        ramp_up_tasks=params["ramp_up_tasks"],
        reputation_half_life=params["reputation_half_life"],
        reputation_scale=params["reputation_scale"],
    )
    if params["adversary"] == "none":
        if params["adversary_options"]:
            raise InvalidParameterError("adversary_options needs an adversary")
        if not measures.active:
            return None
        name = "honest"  # counter-measures on an honest market: what they cost it
    else:
        name = params["adversary"]
    adversary(name, **params["adversary_options"])  # the options are checked now
    economics = Economics(fee=params["fee"], work_cost=params["work_cost"])
    return name, dict(params["adversary_options"]), measures, economics


def _adversarial_point(cfg: Any, setup: Any, runs: int, seed: int, steps: Steps) -> PointTables:
    """Runs of the adversarial engine: the adversary and its honest twin on the same seeds."""
    from mercat.scenarios.collective_adversarial import run_seeds, simulate_run
    from mercat.scenarios.collective_adversaries import adversary

    name, options, measures, economics = setup
    rows, windows = [], []
    for r, run_seed_ in enumerate(run_seeds(seed, runs)):
        owner = adversary(name, **options)
        twin = owner.honest_twin()
        record = simulate_run(cfg, owner, measures, economics, run_seed_)
        baseline = simulate_run(cfg, twin, measures, economics, run_seed_)
        rows.append(
            {
                "run": r,
                "adversary_profit": record.adversary_profit,
                "twin_profit": baseline.adversary_profit,
                "adversary_gain": record.adversary_profit - baseline.adversary_profit,
                "identities": record.identities,
                "adversary_tasks": record.adversary_tasks,
                "deliberate_failures": record.deliberate_failures,
                "honest_loss": record.honest_loss,
                "honest_profit_mean": record.honest_profit_mean,
                "honest_false_removals": record.honest_false_removals,
                "removal_precision_pct": 100 * record.removal_precision,
                "task_failure_rate_pct": 100 * record.task_failure_rate,
                "twin_task_failure_rate_pct": 100 * baseline.task_failure_rate,
                "removed": record.true_positives + record.false_positives,
                "true_positives": record.true_positives,
                "false_positives": record.false_positives,
            }
        )
        if steps.keep:
            windows.append(_adversarial_windows(r, record, steps.every))
    table = pd.DataFrame(rows)
    summary: dict[str, Any] = {"runs": runs}
    for measure in (
        "adversary_profit",
        "twin_profit",
        "adversary_gain",
        "identities",
        "deliberate_failures",
        "honest_loss",
        "honest_profit_mean",
        "honest_false_removals",
    ):
        summary[f"{measure}_mean"], summary[f"{measure}_se"] = mean_and_se(table[measure])
    for measure in ("removal_precision_pct", "task_failure_rate_pct", "twin_task_failure_rate_pct"):
        summary[measure], summary[measure.replace("_pct", "_se_pct")] = mean_and_se(table[measure])
    summary["removed_assets_mean"] = float(table["removed"].mean())
    tables = {"runs": table}
    if steps.keep:
        tables["steps"] = pd.concat(windows, ignore_index=True)
    return PointTables(summary, tables)


def _adversarial_windows(run: int, record: Any, every: int) -> pd.DataFrame:
    """Per window of `every` tasks: its failure rate, assets live and removals so far."""
    tasks = record.failed.size
    ends = np.arange(every, tasks + every, every)
    ends[-1] = tasks
    starts = np.concatenate([[0], ends[:-1]])
    rate = 100 * np.add.reduceat(record.failed.astype(np.int64), starts) / (ends - starts)
    created, removed, left = record.created_at, record.removed_at, record.left_at
    live = [
        int(np.sum((created <= e) & ((removed < 0) | (removed > e)) & ((left < 0) | (left > e))))
        for e in ends
    ]
    return pd.DataFrame(
        {
            "run": run,
            "task": ends,
            "failure_rate_pct": rate,
            "live_assets": np.array(live, dtype=np.int64),
            "removed": _removed_by(removed, ends),
        }
    )


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
