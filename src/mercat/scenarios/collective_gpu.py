"""The GPU engine of seed 000's collective simulation: one CUDA thread per Monte Carlo run.

Seed 000 ("Collective Incentives") reads its Table I off a few hundred runs; the tails a
marketplace operator cares about (the probability that an honest asset is ruined, the
failure rate a rule lets through at the 99.9th percentile) need 10^5-10^6 runs. Runs are
independent, so each is one CUDA thread (numba-cuda) running the per-run body of
`collective_body` (the fast engine's body, the same source) as a device function.

How the result stays exact without a GPU to look at:

- The kernel runs the body over numba-cuda's xoroshiro128+; the CPU twin
  (`simulate_runs_twin`) runs the same body on the CPU over the same generator written out
  (`collective_body.xoroshiro128p_next`). A test runs the kernel under numba-cuda's
  simulator (NUMBA_ENABLE_CUDASIM=1) and holds it bit for bit equal to the twin.
- Streams: run r of root seed s starts xoroshiro128+ at SeedSequence(s, spawn_key=(2, r))
  (two 64-bit words), so a run's result depends on (s, r) only, not on the batch it ran
  in nor on the GPU. Other streams than the fast engine's xoshiro256** ones: the GPU engine
  agrees with the fast engine in distribution (tested with two-sample z-tests of every
  per-run metric), not draw for draw.

The kernel itself is in `collective_gpu_kernel.py` (it imports numba-cuda, an optional
dependency). Memory on the GPU is laid out run-minor (element [i, r] of run r next to run
r+1's), so the threads of a warp, which move through their tasks in step, touch
neighbouring words.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from mercat.errors import DeviceUnavailableError
from mercat.scenarios import collective_body as body
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord
from mercat.scenarios.seed_sequence import spawned_states

THREADS_PER_BLOCK = 128
# the kernel's variant (`collective_gpu_kernel.make_kernel`), chosen by measurement on an
# H200 (docs/collective-incentives.md, "The GPU engine": `benchmarks/bench_gpu.py --variants`)
DEFAULT_VARIANT = {
    "state_in_registers": True,
    "assets_run_major": True,
    "records_packed": False,
    "max_registers": 80,
}

# With `records_packed`, an asset's hot fields share one 32-byte record (four 8-byte words,
# the int32 fields two to a word), so that everything a task reads and writes of a picked
# asset lies in one memory sector instead of five: field -> (word, int32 half or None).
RECORDS = "records"
RECORD_WORDS = 4
RECORD_FIELDS = {
    "stake": (0, None),
    "fa": (1, None),
    "tasks_run": (2, 0),
    "tasks_failed": (2, 1),
    "created": (3, 0),
    "removed": (3, 1),
}


def device_layout(
    shape: body.Shape, assets_run_major: bool, records_packed: bool = False
) -> dict[str, tuple[tuple[int, ...], Any, int]]:
    """Shape, dtype and run axis of every array allocated on the GPU: run-minor (the run
    index last, so a warp's 32 runs touch neighbouring words when they write the same task's
    outcome), except, if `assets_run_major`, the arrays indexed by asset (`body.PER_ASSET`).
    With `records_packed` (run-major only), the fields of `RECORD_FIELDS` are not arrays of
    their own but views of one (runs, capacity, RECORD_WORDS) float64 array, `RECORDS`
    (`allocate` makes the views)."""
    if records_packed and not assets_run_major:
        raise ValueError("packed asset records are laid out run-major (assets_run_major)")
    out = {}
    for name, (dims, dtype) in body.layout(shape, run_axis=0).items():
        if records_packed and name in RECORD_FIELDS:
            continue
        if assets_run_major and name in body.PER_ASSET:
            out[name] = (dims, dtype, 0)
        else:
            out[name] = ((*dims[1:], dims[0]), dtype, -1)
    if records_packed:
        out[RECORDS] = ((shape.runs, shape.capacity, RECORD_WORDS), np.float64, 0)
    return out


def record_fields(records: Any) -> dict[str, Any]:
    """The per-asset fields as strided (runs, capacity) views of packed `records`, a numpy
    array or a device array alike (both view and slice without copying)."""
    halves = records.view(np.int32)
    return {
        name: records[:, :, word] if half is None else halves[:, :, 2 * word + half]
        for name, (word, half) in RECORD_FIELDS.items()
    }


def allocate(layout: dict[str, tuple[tuple[int, ...], Any, int]]) -> dict[str, Any]:
    """Device arrays for `layout`, uninitialized (the body writes before it reads), with
    the packed fields' views beside their records."""
    from numba import cuda

    device = {
        name: cuda.device_array(dims, dtype=dtype) for name, (dims, dtype, _) in layout.items()
    }
    if RECORDS in device:
        device.update(record_fields(device[RECORDS]))
    return device


def outputs_to_host(
    device: dict[str, Any], layout: dict[str, tuple[tuple[int, ...], Any, int]], names: Any
) -> dict[str, np.ndarray]:
    """The outputs `names` on the host, run index first, as `body.run_records` reads them;
    packed records are copied back once and viewed there."""
    out = {name: to_host_run_major(device[name], layout[name][2]) for name in names
           if name in layout}  # fmt: skip
    if RECORDS in layout:
        out.update(record_fields(device[RECORDS].copy_to_host()))
    return out


def run_major(array: np.ndarray, run_axis: int) -> np.ndarray:
    """A device array's host copy with the run index first, as `body.run_records` reads it."""
    return array if run_axis == 0 else np.ascontiguousarray(np.moveaxis(array, run_axis, 0))


def to_host_run_major(array: Any, run_axis: int) -> np.ndarray:
    """A device array on the host with the run index first. A run-minor one is transposed on
    the GPU first (`collective_gpu_kernel.transpose`): on the host, numpy's strided copy of
    the 5 GB of a 10^5-run batch took longer than the kernel's simulation. Under numba-cuda's
    simulator (threads in Python) the host does it."""
    if run_axis == 0:
        return array.copy_to_host()
    if simulator_enabled():
        return run_major(array.copy_to_host(), run_axis)
    from numba import cuda

    from mercat.scenarios.collective_gpu_kernel import TRANSPOSE_BLOCK, transpose

    runs = array.shape[-1]
    rest = array.size // runs if runs else 0
    if rest == 0:  # nothing to move (no combinations, say); CUDA refuses an empty grid
        return np.empty((runs, *array.shape[:-1]), dtype=array.dtype)
    source = array.reshape(rest, runs)
    target = cuda.device_array((runs, rest), dtype=array.dtype)
    grid = (-(-runs // TRANSPOSE_BLOCK[0]), -(-rest // TRANSPOSE_BLOCK[1]))
    transpose[grid, TRANSPOSE_BLOCK](source, target)
    return target.copy_to_host().reshape(runs, *array.shape[:-1])


def gpu_states(seed: int, runs: int, first_run: int = 0) -> np.ndarray:
    """xoroshiro128+ states of runs first_run .. first_run+runs-1 of root `seed`: the two
    words of SeedSequence(seed, spawn_key=(2, r)), computed for all runs at once
    (`seed_sequence.spawned_states`, which a test holds equal to numpy's)."""
    words = spawned_states(seed, 2, first_run, runs, 2)
    words[~words.any(axis=1), 0] = 1  # xoroshiro's one forbidden state; never yielded
    states = np.empty(runs, dtype=body.XOROSHIRO128P_DTYPE)
    states["s0"] = words[:, 0]
    states["s1"] = words[:, 1]
    return states


def _gpu_kernel(variant: dict[str, Any] | None = None) -> Any:
    """The CUDA kernel in `variant` (the engine's by default; `collective_gpu_kernel`,
    imported on first use: numba-cuda is an optional dependency)."""
    from mercat.scenarios.collective_gpu_kernel import kernel_for

    return kernel_for(**(variant or DEFAULT_VARIANT))


# --- availability ---------------------------------------------------------------------


def unavailable_reason() -> str | None:
    """Why the gpu engine cannot run here (None: it can: a CUDA GPU, or numba-cuda's
    simulator under NUMBA_ENABLE_CUDASIM=1)."""
    try:
        import numba_cuda  # noqa: F401 - the maintained CUDA target, not numba's old one
        from numba import cuda
    except ImportError:
        return "the gpu engine needs numba-cuda (pip install 'mercat[gpu]'); use --engine fast"
    try:
        available = cuda.is_available()
    except Exception:  # a broken driver install is "no GPU" to the user
        available = False
    if not available:
        return "the gpu engine needs a CUDA GPU (numba-cuda found none); use --engine fast"
    return None if simulator_enabled() else _target_unloadable()


def _target_unloadable() -> str | None:
    """Why numba-cuda cannot load its CUDA target (None: it can). numba-cuda 0.30.4 registers
    numpy's `row_stack`, which numpy 2.5 removed: its target then fails to load at the first
    kernel compilation, deep in a traceback, although a GPU is there."""
    try:
        import numba.cuda.np.arrayobj  # noqa: F401 - what the first compilation loads
    except Exception as exc:  # an AttributeError for row_stack; any other is as fatal
        from importlib.metadata import version

        return (
            f"numba-cuda {version('numba-cuda')} cannot load its CUDA target under numpy "
            f"{np.__version__} ({type(exc).__name__}: {exc}); pip install 'numpy<2.5'"
        )
    return None


def require_gpu() -> None:
    reason = unavailable_reason()
    if reason:
        raise DeviceUnavailableError(reason)


def simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


# --- running ----------------------------------------------------------------------------


# what `_batch_gpu` copies back: every array but the scratch ones (`live`, `chosen`)
OUTPUTS = ("failed", "live_count", "fa", "created", "removed", "stake", "tasks_run",
           "tasks_failed", "comb_members", "comb_rates", "picks", "counts")  # fmt: skip


def _batch_gpu(
    config: CollectiveConfig, states: np.ndarray, pool: np.ndarray | None,
    record_picks: bool, capacity: int, variant: dict[str, Any],
) -> list[RunRecord | None]:  # fmt: skip
    from numba import cuda

    kernel = _gpu_kernel(variant)
    shape = body.shape_of(config, len(states), capacity, record_picks)
    pool_arg, fparams, iparams = body.pack_parameters(config, pool, record_picks)
    layout = device_layout(shape, variant["assets_run_major"], variant["records_packed"])
    device = allocate(layout)
    threads = min(THREADS_PER_BLOCK, len(states)) if simulator_enabled() else THREADS_PER_BLOCK
    blocks = -(-len(states) // threads)
    with warnings.catch_warnings():
        if simulator_enabled():  # numba-cuda's generator adds uint64 scalars, which wrap
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        kernel[blocks, threads](
            cuda.to_device(states.copy()), cuda.to_device(pool_arg), cuda.to_device(fparams),
            cuda.to_device(iparams), *(device[name] for name in body.ORDER),
        )  # fmt: skip
    return body.run_records(outputs_to_host(device, layout, OUTPUTS), record_picks)


def simulate_runs(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
    variant: dict[str, Any] | None = None,
) -> list[RunRecord]:
    """Runs on the GPU from xoroshiro128+ `states` (`gpu_states`); refuses without one.
    `variant` picks another of the kernel's variants than the engine's (every one gives
    the same runs; the benchmark and the tests compare them)."""
    require_gpu()
    variant = {**DEFAULT_VARIANT, **(variant or {})}
    states = np.ascontiguousarray(states, dtype=body.XOROSHIRO128P_DTYPE)
    return body.with_retries(
        lambda s, cap: _batch_gpu(config, s, pool, record_picks, cap, variant), config, states
    )


def simulate_runs_twin(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """The CPU twin: the kernel's body on the CPU's cores, same xoroshiro128+ streams, the
    same runs bit for bit."""
    runner = body.runs_xoroshiro
    states = np.ascontiguousarray(states, dtype=body.XOROSHIRO128P_DTYPE)
    return body.with_retries(
        lambda s, cap: body.batch_cpu(runner, config, s, pool, record_picks, cap), config, states
    )


def bytes_per_run(config: CollectiveConfig, record_picks: bool = False) -> int:
    """Device memory one run takes (outputs and scratch) at the first capacity tried."""
    shape = body.shape_of(config, 1, body.initial_capacity(config), record_picks)
    return (
        sum(a.nbytes for a in body.new_arrays(shape, 0).values())
        + body.XOROSHIRO128P_DTYPE.itemsize
    )


def default_batch(config: CollectiveConfig, record_picks: bool = False) -> int:
    """Runs per kernel launch: they take at most a quarter of the GPU's free memory (the
    copy back adds, for a moment, a transposed copy of one output, at most as large again)
    and an eighth of the host's (each batch's results are copied there run by run), at most
    2^20 runs; 64 under the simulator, which runs threads in Python."""
    if simulator_enabled():
        return 64
    from numba import cuda

    free, _ = cuda.current_context().get_memory_info()
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    budget = min(free // 4, host // 8)
    return int(max(1, min(1 << 20, budget // bytes_per_run(config, record_picks))))
