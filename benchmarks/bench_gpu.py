"""Speed of seed 000's collective simulation on a GPU, beside the compiled CPU engine.

Coll-SR at N_a = 100, N_t = 10^4 (Table I's market). Events are counted as
`bench_collective.py` counts them: asset-task events, runs x N_t x |A_t|.

Prints JSON:
- `fast`: the compiled CPU engine (numba, every core), `--cpu-runs` runs;
- `cpu_twin`: the gpu engine's body on the CPU (the GPU's streams), `--cpu-runs` runs;
- `gpu`: where a CUDA GPU is present: the kernel alone (launch to synchronize, arrays
  already on the device) and the whole `simulate(engine="gpu")` (states, transfers,
  RunRecords), `--gpu-runs` runs, the compilation apart; `identical_to_cpu_twin`: the first
  `--check-runs` runs compared field by field with the CPU twin. Without a GPU (or under
  numba-cuda's simulator, which is no GPU) it says why and measures nothing: no GPU number
  is ever estimated.

Usage: .venv/bin/python benchmarks/bench_gpu.py [--gpu-runs 100000] [--cpu-runs 100]
On a GPU machine: pip install -e '.[gpu]' first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from mercat.scenarios import collective_body, collective_gpu
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import failure_rate_pool, simulate

SEED = 1


def _rate(config: CollectiveConfig, runs: int, seconds: float) -> dict:
    events = runs * config.tasks * config.assets_per_task
    return {
        "runs": runs,
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds,
    }


def bench_fast(config: CollectiveConfig, runs: int) -> dict:
    simulate(config, runs=1, seed=SEED)  # compile (or load the cache) outside the timing
    start = time.perf_counter()
    simulate(config, runs=runs, seed=SEED)
    return _rate(config, runs, time.perf_counter() - start)


def bench_twin(config: CollectiveConfig, runs: int) -> dict:
    pool = failure_rate_pool(config, SEED)
    collective_gpu.simulate_runs_twin(config, collective_gpu.gpu_states(SEED, 1), pool)
    states = collective_gpu.gpu_states(SEED, runs)
    start = time.perf_counter()
    collective_gpu.simulate_runs_twin(config, states, pool)
    return _rate(config, runs, time.perf_counter() - start)


def _kernel_seconds(config: CollectiveConfig, runs: int) -> float:
    """The kernel alone: every array on the device before, nothing copied back."""
    from numba import cuda

    kernel = collective_gpu._gpu_kernel()
    capacity = collective_body.initial_capacity(config)
    shape = collective_body.shape_of(config, runs, capacity, False)
    host = collective_body.new_arrays(shape, run_axis=-1)
    pool, fparams, iparams = collective_body.pack_parameters(
        config, failure_rate_pool(config, SEED), False
    )
    args = [collective_gpu.gpu_states(SEED, runs), pool, fparams, iparams]
    args += [host[name] for name in collective_body.ORDER]
    device = [cuda.to_device(a) for a in args]
    blocks = -(-runs // collective_gpu.THREADS_PER_BLOCK)
    cuda.synchronize()
    start = time.perf_counter()
    kernel[blocks, collective_gpu.THREADS_PER_BLOCK](*device)
    cuda.synchronize()
    return time.perf_counter() - start


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def bench_gpu(config: CollectiveConfig, runs: int, check_runs: int) -> dict:
    reason = collective_gpu.unavailable_reason()
    if reason is None and collective_gpu.simulator_enabled():
        reason = "NUMBA_ENABLE_CUDASIM=1: numba-cuda's simulator runs threads in Python"
    if reason is not None:
        return {"available": False, "reason": reason}
    from numba import cuda

    device = cuda.get_current_device()
    start = time.perf_counter()
    small = config.with_(tasks=10)
    simulate(small, runs=1, seed=SEED, engine="gpu")  # compile the kernel
    compile_seconds = time.perf_counter() - start
    kernel = _kernel_seconds(config, runs)
    start = time.perf_counter()
    result = simulate(config, runs=runs, seed=SEED, engine="gpu")
    whole = time.perf_counter() - start
    pool = failure_rate_pool(config, SEED)
    twin = collective_gpu.simulate_runs_twin(
        config, collective_gpu.gpu_states(SEED, check_runs), pool
    )
    differing = [
        r for r, (a, b) in enumerate(zip(result.runs, twin, strict=False)) if a.differences(b)
    ]
    _, total = cuda.current_context().get_memory_info()
    return {
        "available": True,
        "device": _text(getattr(device, "name", "unknown")),
        "compute_capability": list(device.compute_capability),
        "memory_bytes": total,
        "compile_seconds": compile_seconds,
        "device_bytes_per_run": collective_gpu.bytes_per_run(config),
        "kernel_only": _rate(config, runs, kernel),
        "simulate": _rate(config, runs, whole),
        "identical_to_cpu_twin": {"runs_compared": len(twin), "differing_runs": differing},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpu-runs", type=int, default=100_000)
    parser.add_argument("--cpu-runs", type=int, default=100)
    parser.add_argument("--check-runs", type=int, default=32)
    args = parser.parse_args()
    config = CollectiveConfig(mechanism="coll-sr", assets=100, tasks=10_000)
    fast = bench_fast(config, args.cpu_runs)
    twin = bench_twin(config, args.cpu_runs)
    gpu = bench_gpu(config, args.gpu_runs, args.check_runs)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "market": {
            "mechanism": config.mechanism,
            "assets": config.assets,
            "tasks": config.tasks,
            "assets_per_task": config.assets_per_task,
        },
        "events": "asset-task events: runs x tasks x assets per task (as bench_collective.py)",
        "fast": fast,
        "cpu_twin": twin,
        "gpu": gpu,
    }
    if gpu["available"]:
        result["gpu_over_fast"] = {
            "kernel_only": gpu["kernel_only"]["events_per_second"] / fast["events_per_second"],
            "simulate": gpu["simulate"]["events_per_second"] / fast["events_per_second"],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
