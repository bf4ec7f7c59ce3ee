"""Speed of `mercat sweep`: seed 000's Table I (9 configurations × Coll-Stake, Coll-SR, 100
runs per cell, fast engine) as a scenario, against the plain loop `mercat reproduce table1`
runs, in the same process and on the same machine.

Prints JSON:
- `reference_loop`: the experiment's loop (simulate each cell, Table I's failure rate and
  removal precision, the per-run spread), seconds; no tables written;
- `sweep`: `run_sweep(seed000-table1.toml)` with 1 and 2 local workers (and `ray` with
  --ray), seconds, into a fresh directory each (points, runs and steps tables, Parquet and
  CSV), with the rows of each table; `simulate_seconds` is the engine's share;
- `rows_per_run`: runs.parquet rows / (cells × runs): 1 when it holds one row per run.

Numba's compilation is excluded (a warm-up run loads the cache first). Timings on a shared
machine are noisy: compare the columns of one run of this script, not runs with each other.

Usage: .venv/bin/python benchmarks/bench_workbench.py [--runs 100] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from mercat.report.experiments import ExperimentContext
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate
from mercat.workbench import load, read_scenario, run_sweep

SCENARIO = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "seed000-table1.toml"


def reference_loop(runs: int) -> float:
    """What `mercat reproduce table1` computes, without its CSV, figure and report."""
    from mercat.scenarios import experiments_collective as table1

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table1.run_table1(ExperimentContext(Path(tmp), runs=runs, show_progress=False))
    return time.perf_counter() - start


def sweep(runs: int, backend: str, workers: int) -> dict:
    scenario = read_scenario(SCENARIO, {"runs": runs})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_sweep(scenario, Path(tmp) / "out", backend=backend, workers=workers)
        seconds = time.perf_counter() - start
        results = load(report.out)
        rows = {name: len(table) for name, table in results.items()}
    return {"backend": backend, "workers": workers, "seconds": seconds, "rows": rows}


def simulate_only(runs: int) -> float:
    scenario = read_scenario(SCENARIO, {"runs": runs})
    start = time.perf_counter()
    for point in scenario.points:
        fields = {
            k: v
            for k, v in point.params.items()
            if k not in ("engine", "tasks_per_round", "window", "runs", "seed")
        }
        simulate(CollectiveConfig(**fields), runs=runs, seed=point.params["seed"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--ray", action="store_true", help="also sweep on a local Ray")
    args = parser.parse_args()
    simulate(CollectiveConfig(tasks=100, assets=10), runs=1)  # load numba's cache first
    cells = len(read_scenario(SCENARIO).points)
    sweeps = [sweep(args.runs, "local", 1), sweep(args.runs, "local", 2)]
    if args.ray:
        sweeps.append(sweep(args.runs, "ray", 2))
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_average": os.getloadavg(),
                "cells": cells,
                "runs_per_cell": args.runs,
                "simulate_seconds": simulate_only(args.runs),
                "reference_loop_seconds": reference_loop(args.runs),
                "sweep": sweeps,
                "rows_per_run": sweeps[0]["rows"]["runs"] / (cells * args.runs),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
