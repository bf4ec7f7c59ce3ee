"""Run a collective-incentive market configuration many times: the simulator's entry point.

`simulate(config, runs, seed, engine)` draws the failure-rate pool (shared by all runs of
the configuration, as in the authors' simulator), derives one random stream per run from
the seed, and runs one of four engines:

- `fast`: the compiled engine (numba), for research scale;
- `reference`: its readable twin; the two give identical runs, draw for draw;
- `pipeline`: the round pipeline a live market runs (`collective_pipeline`): each task a
  request on an in-memory book, cleared by seed 000's selection, settled in base units. It
  agrees with the others in distribution (its streams are numpy's), not draw for draw;
- `gpu`: one CUDA thread per run (`collective_gpu`, numba-cuda), the fast engine's model
  over xoroshiro128+ streams: in distribution equal to the fast engine, run for run equal to
  its CPU twin. It needs a CUDA GPU (or numba-cuda's simulator, NUMBA_ENABLE_CUDASIM=1).

Results are independent of how the runs are split into batches.

A plug-in collective rule (`mercat.incentives.rules.CustomRule`) runs on the reference and
the pipeline engines; the fast and gpu engines compile seed 000's four only and refuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.scenarios import collective_metrics as metrics
from mercat.scenarios.collective_config import MAX_COUNT, CollectiveConfig
from mercat.scenarios.collective_run import RunRecord
from mercat.scenarios.rng import run_states, shared_generator

ENGINES = ("fast", "reference", "pipeline", "gpu")


@dataclass(frozen=True)
class CollectiveRuns:
    config: CollectiveConfig
    seed: int
    engine: str
    runs: tuple[RunRecord, ...]

    def summary(self, window: int = 500) -> dict[str, float]:
        return metrics.summary(self.runs, window)


def check_runs(runs: object, name: str = "runs") -> int:
    """A number of runs: 1 to MAX_COUNT (runs are numbered in the engines' integers)."""
    runs = check.integer(name, runs, minimum=1)
    if runs > MAX_COUNT:
        raise InvalidParameterError(f"{name} must be at most {MAX_COUNT}, got {runs}")
    return runs


def check_engine(config: CollectiveConfig, engine: str, adversarial: bool = False) -> None:
    """Refuse an engine that cannot run the configuration's collective rule, the gpu engine
    where there is no GPU (DeviceUnavailableError), or (with `adversarial`) an adversary and
    counter-measures, which only the reference engine runs
    (`mercat.scenarios.collective_adversarial`)."""
    check.choice("engine", engine, ENGINES)
    if adversarial and engine != "reference":
        raise InvalidParameterError(
            f"the {engine} engine runs no adversaries or counter-measures; set engine = "
            '"reference" (the adversarial engine)'
        )
    if engine in ("fast", "gpu") and not config.mechanism_spec.compiled:
        raise InvalidParameterError(
            f"the {engine} engine compiles seed 000's four rules (free, coll-stake, coll-rep, "
            f"coll-sr) only; collective rule {config.mechanism_spec.name!r} is Python: run it "
            "with engine reference or pipeline"
        )
    if engine == "gpu":
        from mercat.scenarios.collective_gpu import require_gpu

        require_gpu()


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
    tasks_per_round: int = 1,
    workers: int = 1,
) -> CollectiveRuns:
    """Simulate `runs` independent runs of `config`; `progress(n)` is told of finished runs.
    `tasks_per_round` and `workers` (processes sharing the runs; the results do not depend
    on it) apply to the pipeline engine only."""
    runs = check_runs(runs)
    seed = check.integer("seed", seed, minimum=0)
    check.choice("engine", engine, ENGINES)
    tasks_per_round = check.integer("tasks_per_round", tasks_per_round, minimum=1)
    workers = check.integer("workers", workers, minimum=1)
    check_engine(config, engine)
    pool = failure_rate_pool(config, seed)
    records: list[RunRecord] = []
    if engine == "pipeline":
        from mercat.scenarios.collective_pipeline import simulate_runs

        if record_picks:
            raise InvalidParameterError("the pipeline engine does not record picks")
        records = simulate_runs(config, seed, runs, pool, tasks_per_round, workers, progress)
        return CollectiveRuns(config, seed, engine, tuple(records))
    if engine == "gpu":
        from mercat.scenarios import collective_gpu

        step = batch or collective_gpu.default_batch(config, record_picks)
        for start in range(0, runs, step):
            states = collective_gpu.gpu_states(seed, min(step, runs - start), first_run=start)
            records.extend(collective_gpu.simulate_runs(config, states, pool, record_picks))
            if progress:
                progress(len(states))
        return CollectiveRuns(config, seed, engine, tuple(records))
    states = run_states(seed, runs)
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
