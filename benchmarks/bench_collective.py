"""Speed of the collective-incentive simulator: compiled engine against its readable twin.

Prints JSON:
- `engines`: asset-task events per second of the reference engine (plain Python) and the
  compiled engine on the same configurations, and their ratio (goal: >= 200x);
- `table1`: wall time of all of Table I (9 configurations x Coll-Stake/Coll-SR, 100 runs
  per cell) with the compiled engine, compilation excluded (goal: <= 5 s);
- `ruin_dp`: the exact ruin DP, compiled against its numpy twin.

Usage: .venv/bin/python benchmarks/bench_collective.py [--runs 100] [--reference-runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from mercat.incentives import ruin
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate
from mercat.scenarios.experiments_collective import SEED_TABLE1, SEED_TABLE1_CONFIGS


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_engines(reference_runs: int, fast_runs: int) -> list[dict]:
    rows = []
    for mechanism in ("coll-stake", "coll-sr", "coll-rep", "free"):
        config = CollectiveConfig(mechanism=mechanism, assets=100, tasks=10_000)
        simulate(config, runs=1, seed=0)  # compile (or load the cache) outside the timing
        _, ref_s = _timed(lambda c=config: simulate(c, runs=reference_runs, engine="reference"))
        _, fast_s = _timed(lambda c=config: simulate(c, runs=fast_runs))
        events = config.tasks * config.assets_per_task
        ref_rate = reference_runs * events / ref_s
        fast_rate = fast_runs * events / fast_s
        rows.append(
            {
                "mechanism": mechanism,
                "assets": config.assets,
                "tasks": config.tasks,
                "reference_runs": reference_runs,
                "reference_seconds_per_run": ref_s / reference_runs,
                "reference_events_per_second": ref_rate,
                "fast_runs": fast_runs,
                "fast_seconds_per_run": fast_s / fast_runs,
                "fast_events_per_second": fast_rate,
                "speedup": fast_rate / ref_rate,
            }
        )
    return rows


def bench_table1(runs: int) -> dict:
    configs = [
        CollectiveConfig(mechanism=m, tasks=nt, assets=na, stake=s0, alpha=a, target=t)
        for nt, na, s0, a, t in SEED_TABLE1_CONFIGS
        for m in SEED_TABLE1
    ]
    simulate(configs[0], runs=1)  # warm the compiled code
    cells = []
    start = time.perf_counter()
    for config in configs:
        _, seconds = _timed(lambda c=config: simulate(c, runs=runs, seed=1))
        cells.append({"mechanism": config.mechanism, "Na": config.assets, "Nt": config.tasks,
                      "seconds": seconds})  # fmt: skip
    return {"runs_per_cell": runs, "cells": cells, "total_seconds": time.perf_counter() - start}


def bench_ruin() -> dict:
    problem = ruin.RuinProblem(10, 0.19, 0.2, horizon=10_000)
    ruin.ruin_exact(problem)  # compile
    _, fast = _timed(lambda: ruin.ruin_exact(problem))
    _, ref = _timed(lambda: ruin.ruin_exact_reference(problem))
    return {"problem": "x=10, F=0.19, target=0.2, N=10^4", "compiled_seconds": fast,
            "numpy_seconds": ref, "speedup": ref / fast}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--reference-runs", type=int, default=2)
    args = parser.parse_args()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "engines": bench_engines(args.reference_runs, args.runs),
        "table1": bench_table1(args.runs),
        "ruin_dp": bench_ruin(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
