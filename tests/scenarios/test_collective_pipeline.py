"""Seed 000's experiment through the round pipeline agrees with the fast engine in
distribution: per-run statistics within sampling error (a two-sample z test at 4 standard
errors, so a correct engine fails it about once in 16,000 runs of the test)."""

from __future__ import annotations

import numpy as np
import pytest

from mercat.errors import InvalidParameterError
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate

RUNS = 12


def _per_run(result) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    runs = result.runs
    return {
        "failure rate": np.array([r.failed.mean() for r in runs]),
        "late failure rate": np.array([r.failed[-300:].mean() for r in runs]),
        "removed": np.array([r.true_positives + r.false_positives for r in runs], float),
        "live assets": np.array([r.live_assets[-1] for r in runs], float),
        "tasks per asset": np.array([r.tasks_run.mean() for r in runs]),
    }


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return abs(a.mean() - b.mean()) <= 4 * se + 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["coll-stake", "coll-sr"])
def test_the_pipeline_engine_agrees_with_the_fast_engine(mechanism):
    config = CollectiveConfig(mechanism=mechanism, assets=50, tasks=1500, replacement_interval=250)
    fast = _per_run(simulate(config, runs=RUNS, seed=5, engine="fast"))
    pipeline = _per_run(simulate(config, runs=RUNS, seed=6, engine="pipeline"))
    for name in fast:
        assert _agree(fast[name], pipeline[name]), (name, fast[name].mean(), pipeline[name].mean())
    assert fast["removed"].mean() > 1  # the statistics compare something that happens


def test_the_pipeline_engine_is_reproducible_and_batches_rounds():
    config = CollectiveConfig(mechanism="coll-sr", assets=20, tasks=300)
    first = simulate(config, runs=2, seed=1, engine="pipeline")
    again = simulate(config, runs=2, seed=1, engine="pipeline")
    assert all(not a.differences(b) for a, b in zip(first.runs, again.runs, strict=True))
    batched = simulate(config, runs=2, seed=1, engine="pipeline", tasks_per_round=10)
    assert batched.summary()["runs"] == 2 and len(batched.runs[0].failed) == 300
    parallel = simulate(config, runs=2, seed=1, engine="pipeline", workers=2)
    assert all(not a.differences(b) for a, b in zip(first.runs, parallel.runs, strict=True))


def test_the_pipeline_engine_prints_the_same_summary_fields():
    config = CollectiveConfig(mechanism="coll-stake", assets=20, tasks=200)
    assert (
        simulate(config, runs=1, seed=1, engine="pipeline").summary().keys()
        == simulate(config, runs=1, seed=1, engine="fast").summary().keys()
    )
    with pytest.raises(InvalidParameterError, match="picks"):
        simulate(config, runs=1, engine="pipeline", record_picks=True)
