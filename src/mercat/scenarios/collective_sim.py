"""Run a collective-incentive market configuration many times: the simulator's entry point.

`simulate(config, runs, seed, engine)` draws the failure-rate pool (shared by all runs of
the configuration, as in the authors' simulator), derives one xoshiro stream per run from
the seed, and runs either engine. Results are identical across engines and independent of
how the runs are split into batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mercat import validation as check
from mercat.scenarios import collective_metrics as metrics
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord
from mercat.scenarios.rng import run_states, shared_generator

ENGINES = ("fast", "reference")


@dataclass(frozen=True)
class CollectiveRuns:
    config: CollectiveConfig
    seed: int
    engine: str
    runs: tuple[RunRecord, ...]

    def summary(self, window: int = 500) -> dict[str, float]:
        return metrics.summary(self.runs, window)


def failure_rate_pool(config: CollectiveConfig, seed: int) -> np.ndarray | None:
    """The pool of Fa draws (power law with parameter α) or None for direct draws."""
    if config.failure_rate_sampling != "pool":
        return None
    return shared_generator(seed).random(config.pool_size) ** (1.0 / config.alpha)


def simulate(
    config: CollectiveConfig,
    runs: int = 100,
    seed: int = 1,
    engine: str = "fast",
    record_picks: bool = False,
    progress: Callable[[int], None] | None = None,
    batch: int | None = None,
) -> CollectiveRuns:
    """Simulate `runs` independent runs of `config`; `progress(n)` is told of finished runs."""
    runs = check.integer("runs", runs, minimum=1)
    seed = check.integer("seed", seed, minimum=0)
    check.choice("engine", engine, ENGINES)
    pool = failure_rate_pool(config, seed)
    states = run_states(seed, runs)
    records: list[RunRecord] = []
    if engine == "reference":
        from mercat.scenarios.collective_reference import simulate_run

        for state in states:
            records.append(simulate_run(config, state, pool, record_picks))
            if progress:
                progress(1)
    else:
        from mercat.scenarios.collective_fast import simulate_runs

        step = batch or (runs if progress is None else max(1, -(-runs // 10)))
        for start in range(0, runs, step):
            chunk = states[start : start + step]
            records.extend(simulate_runs(config, chunk, pool, record_picks))
            if progress:
                progress(len(chunk))
    return CollectiveRuns(config, seed, engine, tuple(records))
