"""The GPU engine of seed 000's collective simulation: one CUDA thread per Monte Carlo run.

Seed 000 ("Collective Incentives") reads its Table I off a few hundred runs; the tails a
marketplace operator cares about (the probability that an honest asset is ruined, the
failure rate a rule lets through at the 99.9th percentile) need 10^5-10^6 runs. Runs are
independent, so each is one CUDA thread (numba-cuda), with the same model, rules and
configuration as the compiled CPU engine (`collective_fast.py`; the model is explained in
`collective_reference.py`).

How the result stays exact without a GPU to look at:

- One source, three compilations. `_build_body(jit, next_u64)` holds the per-run body
  (a run's tasks, picks, outcomes, settlement, removals and replacements, in the fast
  engine's order of draws) and is compiled for the GPU (`cuda.jit(device=True)` with
  numba-cuda's xoroshiro128+ `xoroshiro128p_next`), for the CPU with this module's own
  xoroshiro128+ (`xoroshiro128p_next`: the CPU twin, `simulate_runs_twin`), and for the CPU
  with the fast engine's xoshiro256** (`simulate_runs_xoshiro`). The last gives the fast
  engine's runs bit for bit (a test holds them equal), so the body is the fast engine's
  model; the CPU twin draws the GPU's stream, so the GPU gives the twin's runs bit for bit
  (a test runs the kernel under numba-cuda's simulator, NUMBA_ENABLE_CUDASIM=1).
- The body uses additions, multiplications and comparisons of doubles, which CUDA rounds as
  IEEE 754 does on the CPU, and integer arithmetic; the one product that feeds a sum is a
  uniform's exact scaling by 2^-53, so fusing a multiply-add would change nothing (a test
  reads the PTX). The one exception is the direct
  failure-rate draw Fa = U^(1/α) (`failure_rate_sampling = "direct"`): `pow` is libdevice's
  on the GPU, which may differ from the CPU's in the last bit. The default pool draws do
  not use it.
- Streams: run r of root seed s starts xoroshiro128+ at SeedSequence(s, spawn_key=(2, r))
  (two 64-bit words), so a run's result depends on (s, r) only, not on the batch it ran
  in nor on the GPU. Other streams than the fast engine's xoshiro256** ones: the GPU engine
  agrees with the fast engine in distribution (tested with two-sample z-tests of every
  per-run metric), not draw for draw.
- A CUDA thread gets its arrays uninitialized; the body writes every element before it
  reads it, and the CPU compilations run on arrays filled with NaN and -7 to prove it.

The kernel itself is in `collective_gpu_kernel.py` (it imports numba-cuda, an optional
dependency). Memory on the GPU is laid out run-minor (element [i, r] of run r next to run r+1's), so
the threads of a warp, which move through their tasks in step, touch neighbouring words.
Arrays are sized as the fast engine's; runs that need more assets are rerun with four times
the room, from their initial states.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from numba import int64, uint64

from mercat.errors import DeviceUnavailableError
from mercat.scenarios import collective_fast
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord

# numba-cuda's xoroshiro128p_dtype, spelled out so the CPU twin needs no numba-cuda
XOROSHIRO128P_DTYPE = np.dtype([("s0", np.uint64), ("s1", np.uint64)], align=True)

_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U14 = np.uint64(14)
_U17 = np.uint64(17)
_U19 = np.uint64(19)
_U28 = np.uint64(28)
_U32 = np.uint64(32)
_U36 = np.uint64(36)
_U45 = np.uint64(45)
_U55 = np.uint64(55)
_U57 = np.uint64(57)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)
_TWO_POW_MINUS_53 = 1.0 / (1 << 53)

# the configuration travels as two small arrays (one kernel signature for every rule)
F_INV_ALPHA, F_STAKE0, F_PENALTY, F_REWARD, F_FLOOR, F_CAP, F_ASSET_TARGET = range(7)
(
    I_INITIAL, I_TASKS, I_PER_TASK, I_USE_POOL, I_MOVES_STAKES, I_HAS_FLOOR, I_HAS_CAP,
    I_REMOVAL, I_INCLUSIVE, I_WEIGHTED, I_INTERVAL, I_REFILL, I_COMBOS, I_COMB_SIZE,
    I_RECORD_PICKS,
) = range(15)  # fmt: skip

THREADS_PER_BLOCK = 128


# --- random streams ---------------------------------------------------------------------


def gpu_states(seed: int, runs: int, first_run: int = 0) -> np.ndarray:
    """xoroshiro128+ states of runs first_run .. first_run+runs-1 of root `seed`."""
    states = np.empty(runs, dtype=XOROSHIRO128P_DTYPE)
    for i in range(runs):
        words = np.random.SeedSequence(seed, spawn_key=(2, first_run + i)).generate_state(
            2, np.uint64
        )
        if not words.any():  # xoroshiro's one forbidden state; SeedSequence never yields it
            words[0] = 1
        states[i] = (words[0], words[1])
    return states


@nb.njit(cache=True)
def xoroshiro128p_next(states, index):
    """xoroshiro128+ (Blackman & Vigna) as numba-cuda's `xoroshiro128p_next`: the output is
    s0 + s1, then s1 ^= s0, s0 = rotl(s0, 55) ^ s1 ^ (s1 << 14), s1 = rotl(s1, 36)."""
    s0 = states[index]["s0"]
    s1 = states[index]["s1"]
    result = s0 + s1
    s1 ^= s0
    states[index]["s0"] = ((s0 << _U55) | (s0 >> _U9)) ^ s1 ^ (s1 << _U14)
    states[index]["s1"] = (s1 << _U36) | (s1 >> _U28)
    return result


@nb.njit(cache=True)
def _xoshiro_next(states, index):
    """xoshiro256** (rng.py, the fast engine's) on row `index` of a (runs, 4) state array.
    Written here, not called from collective_fast: numba's disk cache of this module would
    not notice a change there."""
    s = states[index]
    x = s[1] * _U5
    result = ((x << _U7) | (x >> _U57)) * _U9
    t = s[1] << _U17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << _U45) | (s[3] >> _U19)
    return result


# --- the per-run body, compiled three times -------------------------------------------


def _build_body(jit: Callable[[Any], Any], next_u64: Any) -> Any:
    """The per-run body compiled by `jit` (numba.njit or cuda.jit(device=True)) over the
    random stream `next_u64(states, index)` -> uint64. Same steps and draws as
    `collective_fast._simulate_run`; scratch arrays (`live`, `chosen`) come from the caller
    because a CUDA thread cannot allocate."""

    @jit
    def uniform(states, r):
        return float(next_u64(states, r) >> _U11) * _TWO_POW_MINUS_53

    @jit
    def below(states, r, n):
        """Uniform in [0, n): Lemire's multiply-shift on the top 32 bits, as rng.py."""
        un = uint64(n)
        m = (next_u64(states, r) >> _U32) * un
        low = m & _MASK32
        if low < un:
            threshold = (_TWO32 - un) % un
            while low < threshold:
                m = (next_u64(states, r) >> _U32) * un
                low = m & _MASK32
        return int64(m >> _U32)

    @jit
    def failure_rate(states, r, pool, use_pool, inv_alpha):
        if use_pool:
            return pool[below(states, r, pool.size)]
        return uniform(states, r) ** inv_alpha

    @jit
    def add_asset(
        states, r, now, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
        fa, created, removed, stake, tasks_run, tasks_failed,
        comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
    ):  # fmt: skip
        """Create asset n_assets (returns the new n_assets, n_live, n_comb; -1 on overflow)."""
        if n_assets >= fa.size:
            return -1, n_live, n_comb
        new_id = n_assets
        fa[new_id] = failure_rate(states, r, pool, use_pool, inv_alpha)
        created[new_id] = now
        removed[new_id] = -1
        stake[new_id] = stake0
        tasks_run[new_id] = 0
        tasks_failed[new_id] = 0
        for _ in range(combos_per_asset):
            if n_live < comb_size - 1:
                break
            if n_comb >= comb_rates.size:
                return -1, n_live, n_comb
            got = 0
            while got < comb_size - 1:
                candidate = live[below(states, r, n_live)]
                duplicate = False
                for j in range(got):
                    if comb_members[n_comb, j] == candidate:
                        duplicate = True
                        break
                if not duplicate:
                    comb_members[n_comb, got] = candidate
                    got += 1
            comb_members[n_comb, comb_size - 1] = new_id
            comb_rates[n_comb] = failure_rate(states, r, pool, use_pool, inv_alpha)
            n_comb += 1
        live[n_live] = new_id
        return n_assets + 1, n_live + 1, n_comb

    @jit
    def run(
        states, r, pool, fparams, iparams,
        failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
        comb_members, comb_rates, picks, live, chosen,
    ):  # fmt: skip
        """One run; returns (n_assets, n_combinations, tp, fp, ok); ok = 0 on overflow."""
        inv_alpha = fparams[F_INV_ALPHA]
        stake0 = fparams[F_STAKE0]
        penalty = fparams[F_PENALTY]
        reward = fparams[F_REWARD]
        floor = fparams[F_FLOOR]
        cap = fparams[F_CAP]
        asset_target = fparams[F_ASSET_TARGET]
        n_initial = iparams[I_INITIAL]
        n_tasks = iparams[I_TASKS]
        per_task = iparams[I_PER_TASK]
        use_pool = iparams[I_USE_POOL] != 0
        moves_stakes = iparams[I_MOVES_STAKES] != 0
        has_floor = iparams[I_HAS_FLOOR] != 0
        has_cap = iparams[I_HAS_CAP] != 0
        removal = iparams[I_REMOVAL] != 0
        inclusive = iparams[I_INCLUSIVE] != 0
        weighted = iparams[I_WEIGHTED] != 0
        interval = iparams[I_INTERVAL]
        refill = iparams[I_REFILL] != 0
        combos_per_asset = iparams[I_COMBOS]
        comb_size = iparams[I_COMB_SIZE]
        record_picks = iparams[I_RECORD_PICKS] != 0

        n_live = 0
        n_assets = 0
        n_comb = 0
        tp = 0
        fp = 0
        bound = stake0  # the largest stake any asset ever held
        for _ in range(n_initial):
            n_assets, n_live, n_comb = add_asset(
                states, r, 0, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
                fa, created, removed, stake, tasks_run, tasks_failed,
                comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
            )  # fmt: skip
            if n_assets < 0:
                return 0, 0, 0, 0, 0
        for task in range(1, n_tasks + 1):
            while n_live < per_task:
                n_assets, n_live, n_comb = add_asset(
                    states, r, task, pool, use_pool, inv_alpha, stake0, live, n_live,
                    n_assets, fa, created, removed, stake, tasks_run, tasks_failed,
                    comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
                )  # fmt: skip
                if n_assets < 0:
                    return 0, 0, 0, 0, 0
            # pick: uniform draws, duplicates redrawn; stake-weighted rules accept a draw
            # with probability stake / bound
            got = 0
            while got < per_task:
                candidate = live[below(states, r, n_live)]
                duplicate = False
                for j in range(got):
                    if chosen[j] == candidate:
                        duplicate = True
                        break
                if duplicate:
                    continue
                if weighted and not (uniform(states, r) * bound < stake[candidate]):
                    continue
                chosen[got] = candidate
                got += 1
            # outcome (eq. 1): one uniform against the product of survival probabilities
            survival = 1.0
            for j in range(per_task):
                survival *= 1.0 - fa[chosen[j]]
            for c in range(n_comb):
                inside = True
                for m in range(comb_size):
                    member = comb_members[c, m]
                    found = False
                    for j in range(per_task):
                        if chosen[j] == member:
                            found = True
                            break
                    if not found:
                        inside = False
                        break
                if inside:
                    survival *= 1.0 - comb_rates[c]
            task_failed = uniform(states, r) >= survival
            # settle (same arithmetic as CollectiveRule.updated_stake / is_ruined)
            for j in range(per_task):
                a = chosen[j]
                if moves_stakes:
                    value = stake[a] - penalty if task_failed else stake[a] + reward
                    if has_cap and value > cap:
                        value = cap
                    if has_floor and value < floor:
                        value = floor
                    stake[a] = value
                tasks_run[a] += 1
                if task_failed:
                    tasks_failed[a] += 1
                if stake[a] > bound:
                    bound = stake[a]
            if removal:
                for j in range(per_task):
                    a = chosen[j]
                    ruined = stake[a] <= penalty if inclusive else stake[a] < penalty
                    if ruined:
                        pos = 0
                        while live[pos] != a:
                            pos += 1
                        for q in range(pos, n_live - 1):
                            live[q] = live[q + 1]
                        n_live -= 1
                        removed[a] = task
                        if fa[a] > asset_target:
                            tp += 1
                        else:
                            fp += 1
            # replacement every T tasks: one asset, or back to N_a
            if task % interval == 0:
                while n_live < n_initial:
                    n_assets, n_live, n_comb = add_asset(
                        states, r, task, pool, use_pool, inv_alpha, stake0, live, n_live,
                        n_assets, fa, created, removed, stake, tasks_run, tasks_failed,
                        comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
                    )  # fmt: skip
                    if n_assets < 0:
                        return 0, 0, 0, 0, 0
                    if not refill:
                        break
            failed[task - 1] = task_failed
            live_count[task - 1] = n_live
            if record_picks:
                for j in range(per_task):
                    picks[task - 1, j] = chosen[j]
        return n_assets, n_comb, tp, fp, 1

    return run


# The CPU compilations: module-level drivers (numba caches them on disk; a closure's
# cache key would change from process to process), one per stream, over run-major arrays.
_body_xoroshiro = _build_body(nb.njit, xoroshiro128p_next)
_body_xoshiro = _build_body(nb.njit, _xoshiro_next)


@nb.njit(parallel=True, cache=True)
def _runs_xoroshiro(
    states, pool, fparams, iparams,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, live, chosen, counts,
):  # fmt: skip
    for r in nb.prange(counts.shape[0]):
        n_assets, n_comb, tp, fp, ok = _body_xoroshiro(
            states, r, pool, fparams, iparams, failed[r], live_count[r], fa[r],
            created[r], removed[r], stake[r], tasks_run[r], tasks_failed[r],
            comb_members[r], comb_rates[r], picks[r], live[r], chosen[r],
        )  # fmt: skip
        counts[r, 0] = n_assets
        counts[r, 1] = n_comb
        counts[r, 2] = tp
        counts[r, 3] = fp
        counts[r, 4] = ok


@nb.njit(parallel=True, cache=True)
def _runs_xoshiro(
    states, pool, fparams, iparams,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, live, chosen, counts,
):  # fmt: skip
    for r in nb.prange(counts.shape[0]):
        n_assets, n_comb, tp, fp, ok = _body_xoshiro(
            states, r, pool, fparams, iparams, failed[r], live_count[r], fa[r],
            created[r], removed[r], stake[r], tasks_run[r], tasks_failed[r],
            comb_members[r], comb_rates[r], picks[r], live[r], chosen[r],
        )  # fmt: skip
        counts[r, 0] = n_assets
        counts[r, 1] = n_comb
        counts[r, 2] = tp
        counts[r, 3] = fp
        counts[r, 4] = ok


def _gpu_kernel() -> Any:
    """The CUDA kernel (`collective_gpu_kernel`, imported on first use: numba-cuda is an
    optional dependency)."""
    from mercat.scenarios.collective_gpu_kernel import kernel

    return kernel


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
    return None


def require_gpu() -> None:
    reason = unavailable_reason()
    if reason:
        raise DeviceUnavailableError(reason)


def simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


# --- host side --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    runs: int
    tasks: int
    per_task: int
    capacity: int
    comb_capacity: int
    comb_size: int
    pick_rows: int


def _parameters(config: CollectiveConfig, pool: np.ndarray | None, record_picks: bool):
    rule = config.rule
    fparams = np.zeros(7)
    fparams[F_INV_ALPHA] = 1.0 / config.alpha
    fparams[F_STAKE0] = float(config.stake)
    fparams[F_PENALTY] = float(rule.penalty)
    fparams[F_REWARD] = float(rule.reward)
    fparams[F_FLOOR] = float(rule.stake_floor or 0.0)
    fparams[F_CAP] = float(rule.stake_cap or 0.0)
    fparams[F_ASSET_TARGET] = float(config.asset_target)
    iparams = np.zeros(15, dtype=np.int64)
    iparams[I_INITIAL] = config.assets
    iparams[I_TASKS] = config.tasks
    iparams[I_PER_TASK] = config.assets_per_task
    iparams[I_USE_POOL] = pool is not None
    iparams[I_MOVES_STAKES] = rule.moves_stakes
    iparams[I_HAS_FLOOR] = rule.stake_floor is not None
    iparams[I_HAS_CAP] = rule.stake_cap is not None
    iparams[I_REMOVAL] = rule.removal
    iparams[I_INCLUSIVE] = rule.removal_inclusive
    iparams[I_WEIGHTED] = config.mechanism_spec.stake_weighted
    iparams[I_INTERVAL] = config.replacement_interval
    iparams[I_REFILL] = config.replacement == "refill"
    iparams[I_COMBOS] = config.combinations_per_asset
    iparams[I_COMB_SIZE] = config.combination_size
    iparams[I_RECORD_PICKS] = record_picks
    return (pool if pool is not None else np.zeros(1)), fparams, iparams


def _layout(shape: _Shape, run_axis: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Shape and dtype of every output and scratch array; the run index is axis 0 (CPU) or
    the last axis (GPU)."""

    def dims(per_run: tuple[int, ...]) -> tuple[int, ...]:
        return (shape.runs, *per_run) if run_axis == 0 else (*per_run, shape.runs)

    cap, k = shape.capacity, shape.per_task
    return {
        "failed": (dims((shape.tasks,)), np.bool_),
        "live_count": (dims((shape.tasks,)), np.int32),
        "fa": (dims((cap,)), np.float64),
        "created": (dims((cap,)), np.int32),
        "removed": (dims((cap,)), np.int32),
        "stake": (dims((cap,)), np.float64),
        "tasks_run": (dims((cap,)), np.int32),
        "tasks_failed": (dims((cap,)), np.int32),
        "comb_members": (dims((shape.comb_capacity, shape.comb_size)), np.int32),
        "comb_rates": (dims((shape.comb_capacity,)), np.float64),
        "picks": (dims((shape.pick_rows, k)), np.int32),
        "live": (dims((cap,)), np.int32),
        "chosen": (dims((k,)), np.int32),
        "counts": (dims((5,)), np.int64),
    }


def _arrays(shape: _Shape, run_axis: int, poisoned: bool = False) -> dict[str, np.ndarray]:
    """The arrays of `_layout`, zeroed, or `poisoned` (NaN, -7, True): the body writes every
    element before it reads it, so its runs do not depend on what the arrays held (a kernel
    gets them uninitialized), and the CPU compilations run on poison to show it."""
    out = {}
    for name, (dims, dtype) in _layout(shape, run_axis).items():
        if not poisoned:
            out[name] = np.zeros(dims, dtype=dtype)
        elif np.dtype(dtype) == np.float64:
            out[name] = np.full(dims, np.nan)
        else:
            out[name] = np.full(dims, -7 if np.dtype(dtype) != np.bool_ else True, dtype=dtype)
    return out


_ORDER = (
    "failed", "live_count", "fa", "created", "removed", "stake", "tasks_run", "tasks_failed",
    "comb_members", "comb_rates", "picks", "live", "chosen", "counts",
)  # fmt: skip


def bytes_per_run(config: CollectiveConfig, record_picks: bool = False) -> int:
    """Device memory one run takes (outputs and scratch) at the first capacity tried."""
    shape = _shape(config, 1, collective_fast._initial_capacity(config), record_picks)
    return sum(a.nbytes for a in _arrays(shape, 0).values()) + XOROSHIRO128P_DTYPE.itemsize


def _shape(config: CollectiveConfig, runs: int, capacity: int, record_picks: bool) -> _Shape:
    return _Shape(
        runs=runs,
        tasks=config.tasks,
        per_task=config.assets_per_task,
        capacity=capacity,
        comb_capacity=capacity * config.combinations_per_asset,
        comb_size=config.combination_size,
        pick_rows=config.tasks if record_picks else 1,
    )


def _records(arrays: dict[str, np.ndarray], record_picks: bool) -> list[RunRecord | None]:
    """RunRecords from run-major arrays (None for a run that ran out of room)."""
    out: list[RunRecord | None] = []
    for r in range(arrays["counts"].shape[0]):
        n, c, tp, fp, ok = (int(v) for v in arrays["counts"][r])
        if not ok:
            out.append(None)
            continue
        out.append(
            RunRecord(
                failed=arrays["failed"][r],
                live_assets=arrays["live_count"][r],
                failure_rate=arrays["fa"][r, :n].copy(),
                created_at=arrays["created"][r, :n].copy(),
                removed_at=arrays["removed"][r, :n].copy(),
                stake=arrays["stake"][r, :n].copy(),
                tasks_run=arrays["tasks_run"][r, :n].copy(),
                tasks_failed=arrays["tasks_failed"][r, :n].copy(),
                true_positives=tp,
                false_positives=fp,
                combination_members=arrays["comb_members"][r, :c].copy(),
                combination_rates=arrays["comb_rates"][r, :c].copy(),
                picks=arrays["picks"][r] if record_picks else None,
            )
        )
    return out


def _batch_cpu(
    runner: Any, config: CollectiveConfig, states: np.ndarray, pool: np.ndarray | None,
    record_picks: bool, capacity: int,
) -> list[RunRecord | None]:  # fmt: skip
    shape = _shape(config, len(states), capacity, record_picks)
    arrays = _arrays(shape, run_axis=0, poisoned=True)
    pool_arg, fparams, iparams = _parameters(config, pool, record_picks)
    runner(states.copy(), pool_arg, fparams, iparams, *(arrays[name] for name in _ORDER))
    return _records(arrays, record_picks)


def _batch_gpu(
    config: CollectiveConfig, states: np.ndarray, pool: np.ndarray | None,
    record_picks: bool, capacity: int,
) -> list[RunRecord | None]:  # fmt: skip
    from numba import cuda

    kernel = _gpu_kernel()
    shape = _shape(config, len(states), capacity, record_picks)
    pool_arg, fparams, iparams = _parameters(config, pool, record_picks)
    device = {  # uninitialized: the body writes before it reads
        name: cuda.device_array(dims, dtype=dtype)
        for name, (dims, dtype) in _layout(shape, run_axis=-1).items()
    }
    threads = min(THREADS_PER_BLOCK, len(states)) if simulator_enabled() else THREADS_PER_BLOCK
    blocks = -(-len(states) // threads)
    with warnings.catch_warnings():
        if simulator_enabled():  # numba-cuda's generator adds uint64 scalars, which wrap
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        kernel[blocks, threads](
            cuda.to_device(states.copy()), cuda.to_device(pool_arg), cuda.to_device(fparams),
            cuda.to_device(iparams), *(device[name] for name in _ORDER),
        )  # fmt: skip
    outputs = ("failed", "live_count", "fa", "created", "removed", "stake", "tasks_run",
               "tasks_failed", "comb_members", "comb_rates", "picks", "counts")  # fmt: skip
    run_major = {
        name: np.ascontiguousarray(np.moveaxis(device[name].copy_to_host(), -1, 0))
        for name in outputs
    }
    return _records(run_major, record_picks)


def _with_retries(
    batch: Callable[[np.ndarray, int], list[RunRecord | None]],
    config: CollectiveConfig,
    states: np.ndarray,
) -> list[RunRecord]:
    """Run every state; runs that ran out of room are rerun from their initial states with
    four times the room (as the fast engine does)."""
    records: list[RunRecord | None] = [None] * len(states)
    todo = np.arange(len(states))
    capacity = collective_fast._initial_capacity(config)
    while todo.size:
        retry = []
        for i, record in zip(todo, batch(states[todo], capacity), strict=True):
            if record is None:
                retry.append(i)
            else:
                records[i] = record
        todo = np.array(retry, dtype=np.int64)
        capacity *= 4
    return records  # type: ignore[return-value]


def simulate_runs(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """Runs on the GPU from xoroshiro128+ `states` (`gpu_states`); refuses without one."""
    require_gpu()
    states = np.ascontiguousarray(states, dtype=XOROSHIRO128P_DTYPE)
    return _with_retries(
        lambda s, cap: _batch_gpu(config, s, pool, record_picks, cap), config, states
    )


def simulate_runs_twin(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """The CPU twin: the kernel's body on the CPU's cores, same xoroshiro128+ streams, the
    same runs bit for bit."""
    runner = _runs_xoroshiro
    states = np.ascontiguousarray(states, dtype=XOROSHIRO128P_DTYPE)
    return _with_retries(
        lambda s, cap: _batch_cpu(runner, config, s, pool, record_picks, cap), config, states
    )


def simulate_runs_xoshiro(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """The kernel's body over the fast engine's xoshiro256** streams (`rng.run_states`):
    the fast engine's runs bit for bit, which proves the body is its model."""
    runner = _runs_xoshiro
    states = np.ascontiguousarray(states, dtype=np.uint64).reshape(-1, 4)
    return _with_retries(
        lambda s, cap: _batch_cpu(runner, config, s, pool, record_picks, cap), config, states
    )


def default_batch(config: CollectiveConfig, record_picks: bool = False) -> int:
    """Runs per kernel launch: they take at most a quarter of the GPU's free memory and an
    eighth of the host's (each batch's results are copied back and reordered run by run
    there), at most 2^20 runs; 64 under the simulator, which runs threads in Python."""
    if simulator_enabled():
        return 64
    from numba import cuda

    free, _ = cuda.current_context().get_memory_info()
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    budget = min(free // 4, host // 8)
    return int(max(1, min(1 << 20, budget // bytes_per_run(config, record_picks))))
