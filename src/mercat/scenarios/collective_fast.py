"""The compiled engine of seed 000's collective simulation: numba, every core, one run each.

Same algorithm and same random draws as `collective_reference.py` (read that module for the
model): the per-run body of `collective_body` compiled for the CPU over xoshiro256**, the
streams of `rng.run_states` (`rng.Xoshiro256` is their readable twin). A test holds the
runs of this engine equal to the reference engine's event for event. The gpu engine and its
CPU twin compile the same body, so the three cannot drift apart.

Runs are independent streams, so `prange` spreads them over cores without changing any
result. The compiled code is cached on disk (in __pycache__).
"""

from __future__ import annotations

import numpy as np

from mercat.scenarios import collective_body as body
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord


def simulate_runs(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """Simulate len(states) runs from xoshiro256** `states` (shape (runs, 4)) in parallel;
    the same records as the reference engine."""
    states = np.ascontiguousarray(states, dtype=np.uint64).reshape(-1, 4)
    return body.with_retries(
        lambda s, capacity: body.batch_cpu(
            body.runs_xoshiro, config, s, pool, record_picks, capacity
        ),
        config,
        states,
    )


def stream(state: np.ndarray, kinds: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Compiled twin of a sequence of `Xoshiro256` draws (for the RNG differential test):
    kind 0 = u64 (its top 53 bits), 1 = uniform, 2 = below(bound)."""
    return body.stream_xoshiro(state, kinds, bounds)
