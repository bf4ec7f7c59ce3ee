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

With `--large-runs N`, also the kernel alone at N runs (a launch that fills the GPU several
times over); with `--variants`, the kernel's variants side by side (`collective_gpu_kernel.
make_kernel`: where the generator's state lives, how the per-asset arrays are laid out
(interleaved across runs, each run's contiguous, or packed into one record per asset), a
cap on registers per thread, threads per block), each at `--gpu-runs` runs and each checked
against the twin.

Usage: .venv/bin/python benchmarks/bench_gpu.py [--gpu-runs 100000] [--cpu-runs 100]
    [--large-runs 1048576] [--variants]
On a GPU machine: pip install -e '.[gpu]' first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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


def _device_launch(config: CollectiveConfig, runs: int, kernel, threads: int, variant: dict):
    """Everything one launch needs, on the device (outputs uninitialized, as the engine
    allocates them, in `variant`'s layout), and a function that launches `kernel` once and
    waits for it."""
    from numba import cuda

    capacity = collective_body.initial_capacity(config)
    shape = collective_body.shape_of(config, runs, capacity, False)
    pool, fparams, iparams = collective_body.pack_parameters(
        config, failure_rate_pool(config, SEED), False
    )
    states = collective_gpu.gpu_states(SEED, runs)
    inputs = [cuda.to_device(a) for a in (states, pool, fparams, iparams)]
    layout = collective_gpu.device_layout(
        shape, variant["assets_run_major"], variant["records_packed"]
    )
    outputs = collective_gpu.allocate(layout)
    blocks = -(-runs // threads)

    def launch() -> float:
        inputs[0].copy_to_device(states)  # every launch starts from the same states
        cuda.synchronize()
        start = time.perf_counter()
        kernel[blocks, threads](*inputs, *(outputs[name] for name in collective_body.ORDER))
        cuda.synchronize()
        return time.perf_counter() - start

    return launch, outputs, layout


def _kernel_seconds(
    config: CollectiveConfig, runs: int, variant: dict | None = None, threads: int = 0,
    launches: int = 3,
) -> float:  # fmt: skip
    """The kernel alone (launch to synchronize), every array on the device before, nothing
    copied back; the fastest of `launches` launches after one that may compile. Without a
    `variant`, the engine's."""
    variant = variant or collective_gpu.DEFAULT_VARIANT
    kernel = collective_gpu._gpu_kernel(variant)
    launch, _, _ = _device_launch(
        config, runs, kernel, threads or collective_gpu.THREADS_PER_BLOCK, variant
    )
    launch()
    return min(launch() for _ in range(launches))


def _records(outputs: dict, layout: dict) -> list:
    arrays = collective_gpu.outputs_to_host(outputs, layout, collective_gpu.OUTPUTS)
    return collective_body.run_records(arrays, False)


# (state_in_registers, assets_run_major, records_packed, max_registers, threads per block)
VARIANTS = [
    (False, False, False, None, 128),  # the first kernel: state in global memory, 144 registers
    (True, False, False, None, 128),
    (True, False, False, 80, 128),
    (True, False, False, 64, 128),
    (True, True, False, None, 128),
    (True, True, False, 96, 128),
    (True, True, False, 80, 128),  # the engine's
    (True, True, False, 64, 128),
    (True, True, False, 80, 64),
    (True, True, False, 80, 256),
    (True, True, True, None, 128),  # an asset's fields in one 32-byte record
    (True, True, True, 96, 128),
    (True, True, True, 80, 128),
    (True, True, True, 64, 128),
    (True, True, True, 80, 256),
]


def bench_variants(config: CollectiveConfig, runs: int, check_runs: int) -> list[dict]:
    """The kernel's variants (`collective_gpu_kernel.make_kernel`) and block sizes side by
    side: compile seconds, the kernel alone at `runs` runs, and whether its first
    `check_runs` runs equal the CPU twin's field by field (run at that size)."""
    twin = collective_gpu.simulate_runs_twin(
        config, collective_gpu.gpu_states(SEED, check_runs), failure_rate_pool(config, SEED)
    )
    rows = []
    for in_registers, run_major, packed, max_registers, threads in VARIANTS:
        variant = {
            "state_in_registers": in_registers,
            "assets_run_major": run_major,
            "records_packed": packed,
            "max_registers": max_registers,
        }
        kernel = collective_gpu._gpu_kernel(variant)
        start = time.perf_counter()
        launch, outputs, layout = _device_launch(config, check_runs, kernel, threads, variant)
        launch()
        compile_seconds = time.perf_counter() - start
        records = _records(outputs, layout)
        complete = all(record is not None for record in records)
        differing = [
            r for r, (a, b) in enumerate(zip(records, twin, strict=True))
            if a is None or a.differences(b)
        ]  # fmt: skip
        seconds = _kernel_seconds(config, runs, variant, threads)
        row = {
            **variant,
            "threads_per_block": threads,
            "compile_seconds": compile_seconds,
            "registers": _registers(kernel),
            "kernel_only": _rate(config, runs, seconds),
            "identical_to_cpu_twin": {
                "runs_compared": len(twin),
                "all_within_room": complete,
                "differing_runs": differing,
            },
        }
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _registers(kernel) -> int | None:
    try:
        return int(next(iter(kernel.get_regs_per_thread().values())))
    except Exception:  # an older numba-cuda: not reported
        return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def bench_gpu(
    config: CollectiveConfig, runs: int, check_runs: int, large_runs: int, variants: bool
) -> dict:
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
    out = {
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
    print(json.dumps({"gpu": out}), file=sys.stderr, flush=True)  # kept if a later part fails
    if variants:
        out["variants"] = bench_variants(config, runs, check_runs)
    if large_runs:
        out["kernel_only_large"] = _rate(
            config, large_runs, _kernel_seconds(config, large_runs, launches=1)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpu-runs", type=int, default=100_000)
    parser.add_argument("--cpu-runs", type=int, default=100)
    parser.add_argument("--check-runs", type=int, default=32)
    parser.add_argument(
        "--large-runs", type=int, default=0, help="also the kernel alone at this many runs"
    )
    parser.add_argument(
        "--variants", action="store_true", help="also the kernel's variants, side by side"
    )
    args = parser.parse_args()
    config = CollectiveConfig(mechanism="coll-sr", assets=100, tasks=10_000)
    fast = bench_fast(config, args.cpu_runs)
    twin = bench_twin(config, args.cpu_runs)
    print(json.dumps({"fast": fast, "cpu_twin": twin}), file=sys.stderr, flush=True)
    gpu = bench_gpu(config, args.gpu_runs, args.check_runs, args.large_runs, args.variants)
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
