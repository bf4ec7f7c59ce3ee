"""Seed 000's Table I on the gpu engine's random streams, beside the fast engine and the seed.

The gpu engine draws other streams (xoroshiro128+) than the fast engine (xoshiro256**), so
its Table I is another sample of the same market. This prints it, cell by cell: removal
precision and the Table I task failure rate (%) on the GPU's streams, on the fast engine's,
and the seed's, with z as `mercat reproduce table1` computes it (the difference from the
seed in standard errors of a difference of two means). Where there is a GPU it runs the gpu
engine; elsewhere the CPU twin, which gives the GPU's runs bit for bit (`engine` says which).

Usage: .venv/bin/python benchmarks/fidelity_gpu_table1.py [--runs 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import time

from mercat.scenarios import collective_gpu
from mercat.scenarios import collective_metrics as metrics
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import failure_rate_pool, simulate
from mercat.scenarios.experiments_collective import (
    SEED_RUNS,
    SEED_TABLE1,
    SEED_TABLE1_CONFIGS,
    WINDOW,
    _per_run_spread,
)


def _gpu_streams(config: CollectiveConfig, runs: int, seed: int, on_gpu: bool) -> list:
    if on_gpu:
        return list(simulate(config, runs=runs, seed=seed, engine="gpu").runs)
    states = collective_gpu.gpu_states(seed, runs)
    return collective_gpu.simulate_runs_twin(config, states, failure_rate_pool(config, seed))


def _cell(runs: list, seed_value: tuple[float, float]) -> dict:
    precision = 100 * metrics.removal_precision(runs)
    rate = 100 * metrics.table_failure_rate(runs, WINDOW)
    se_p, se_f = _per_run_spread(runs, WINDOW)
    scale = math.sqrt(1 + len(runs) / SEED_RUNS)
    return {
        "precision_pct": round(precision, 2),
        "failure_rate_pct": round(rate, 3),
        "precision_z": round((precision - seed_value[0]) / (se_p * scale), 2) if se_p else 0.0,
        "failure_rate_z": round((rate - seed_value[1]) / (se_f * scale), 2) if se_f else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    on_gpu = collective_gpu.unavailable_reason() is None and not collective_gpu.simulator_enabled()
    start = time.perf_counter()
    cells = []
    for index, (nt, na, s0, alpha, target) in enumerate(SEED_TABLE1_CONFIGS):
        for mechanism in SEED_TABLE1:
            config = CollectiveConfig(
                mechanism=mechanism, tasks=nt, assets=na, stake=s0, alpha=alpha, target=target
            )
            seed_value = SEED_TABLE1[mechanism][index]
            fast = simulate(config, runs=args.runs, seed=args.seed).runs
            gpu = _gpu_streams(config, args.runs, args.seed, on_gpu)
            cells.append(
                {
                    "config": index + 1,
                    "mechanism": mechanism,
                    "seed": {"precision_pct": seed_value[0], "failure_rate_pct": seed_value[1]},
                    "gpu_streams": _cell(gpu, seed_value),
                    "fast": _cell(list(fast), seed_value),
                }
            )
    within = sum(
        abs(c["gpu_streams"][z]) <= 2 for c in cells for z in ("precision_z", "failure_rate_z")
    )
    print(
        json.dumps(
            {
                "engine": "gpu" if on_gpu else "cpu twin of the gpu engine (the same runs)",
                "runs_per_cell": args.runs,
                "seed": args.seed,
                "gpu_streams_within_2_se_of_the_seed": f"{within} of {2 * len(cells)}",
                "seconds": round(time.perf_counter() - start, 1),
                "cells": cells,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
