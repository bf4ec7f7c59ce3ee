"""The per-run body of seed 000's collective simulation, one source for every compiled engine.

Seed 000 ("Collective Incentives") simulates a marketplace of assets that fail, are chosen
for tasks, pay penalties and earn rewards under a collective rule; `collective_reference.py`
explains the model in readable Python. This module holds the same model written over flat
arrays (`build_body`), compiled three ways:

- for the CPU over xoshiro256** (`xoshiro256ss_next`, the streams of `rng.run_states`):
  the fast engine (`collective_fast`), which a test holds event for event equal to the
  readable reference engine;
- for the CPU over xoroshiro128+ (`xoroshiro128p_next`, numba-cuda's generator written out):
  the gpu engine's CPU twin (`collective_gpu.simulate_runs_twin`);
- for the GPU (`cuda.jit(device=True)` over numba-cuda's own xoroshiro128+): the gpu
  engine's kernel (`collective_gpu_kernel`), which a test holds bit for bit equal to the
  twin under numba-cuda's simulator.

So the fast engine, the twin and the kernel cannot drift apart: there is one body.

How the body is written so that it compiles for a GPU too:

- the live assets are a compact int32 array kept in arrival order (removal shifts the tail,
  as `list.remove` does in the reference);
- stake-weighted picks are rejection draws against the largest stake ever held, so a pick
  costs O(1) expected trials instead of a pass over the stakes;
- a task's outcome is one uniform against the product of the survival probabilities;
- scratch arrays (`live`, `chosen`) come from the caller, since a CUDA thread cannot
  allocate; the configuration travels as two small arrays (one signature for every rule);
- a CUDA thread gets its arrays uninitialized: the body writes every element before it reads
  it, and the CPU compilations run on arrays filled with NaN and -7 to prove it;
- it uses additions, multiplications and comparisons of doubles, which CUDA rounds as IEEE
  754 does on the CPU, and integer arithmetic; the one product that feeds a sum is a
  uniform's exact scaling by 2^-53, so fusing a multiply-add would change nothing (a test
  reads the PTX). The one exception is the direct failure-rate draw Fa = U^(1/α)
  (`failure_rate_sampling = "direct"`): `pow` is libdevice's on the GPU, which may differ
  from the CPU's in the last bit. The default pool draws do not use it.

Runs are independent streams, so the CPU drivers spread them over cores with `prange`
without changing any result. Arrays are sized for a typical run; runs that need more assets
are rerun from their initial states with four times the room. `cache=True` keeps the
compiled code across invocations (in __pycache__).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numba as nb
import numpy as np
from numba import int64, uint64

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


# --- random streams ---------------------------------------------------------------------


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
def xoshiro256ss_next(states, index):
    """xoshiro256** (Blackman & Vigna; `rng.Xoshiro256`) on row `index` of a (runs, 4) state
    array: the fast engine's streams."""
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


class CompiledBody(NamedTuple):
    """The body compiled over one random stream: `run` simulates one run; `uniform` and
    `below` are its draws (the RNG differential test reads them)."""

    run: Any
    uniform: Any
    below: Any


def build_body(jit: Callable[[Any], Any], next_u64: Any) -> CompiledBody:
    """The per-run body compiled by `jit` (numba.njit or cuda.jit(device=True)) over the
    random stream `next_u64(states, index)` -> uint64, in the reference engine's order of
    draws; scratch arrays (`live`, `chosen`) come from the caller because a CUDA thread
    cannot allocate."""

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

    return CompiledBody(run, uniform, below)


# The CPU compilations: module-level drivers (numba caches them on disk; a closure's
# cache key would change from process to process), one per stream, over run-major arrays.
# They are the same loop over different bodies, kept apart for that cache.
_body_xoroshiro = build_body(nb.njit, xoroshiro128p_next)
_body_xoshiro = build_body(nb.njit, xoshiro256ss_next)


@nb.njit(parallel=True, cache=True)
def runs_xoroshiro(
    states, pool, fparams, iparams,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, live, chosen, counts,
):  # fmt: skip
    for r in nb.prange(counts.shape[0]):
        n_assets, n_comb, tp, fp, ok = _body_xoroshiro.run(
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
def runs_xoshiro(
    states, pool, fparams, iparams,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, live, chosen, counts,
):  # fmt: skip
    for r in nb.prange(counts.shape[0]):
        n_assets, n_comb, tp, fp, ok = _body_xoshiro.run(
            states, r, pool, fparams, iparams, failed[r], live_count[r], fa[r],
            created[r], removed[r], stake[r], tasks_run[r], tasks_failed[r],
            comb_members[r], comb_rates[r], picks[r], live[r], chosen[r],
        )  # fmt: skip
        counts[r, 0] = n_assets
        counts[r, 1] = n_comb
        counts[r, 2] = tp
        counts[r, 3] = fp
        counts[r, 4] = ok


@nb.njit(cache=True)
def _stream_xoshiro(state, kinds, bounds):
    states = state.reshape(1, 4).copy()
    out = np.empty(kinds.size, dtype=np.float64)
    for i in range(kinds.size):
        if kinds[i] == 0:
            out[i] = float(xoshiro256ss_next(states, 0) >> _U11)  # 53 bits survive the float
        elif kinds[i] == 1:
            out[i] = _body_xoshiro.uniform(states, 0)
        else:
            out[i] = _body_xoshiro.below(states, 0, bounds[i])
    return out


def stream_xoshiro(state: np.ndarray, kinds: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The fast engine's draws from one xoshiro256** state, as the body makes them: kind 0 =
    u64 (its top 53 bits), 1 = uniform, 2 = below(bound). For the RNG differential test."""
    return _stream_xoshiro(
        np.asarray(state, dtype=np.uint64),
        np.asarray(kinds, dtype=np.int64),
        np.asarray(bounds, dtype=np.int64),
    )


# --- host side: arrays in, RunRecords out ----------------------------------------------


@dataclass(frozen=True)
class Shape:
    runs: int
    tasks: int
    per_task: int
    capacity: int
    comb_capacity: int
    comb_size: int
    pick_rows: int


def pack_parameters(config: CollectiveConfig, pool: np.ndarray | None, record_picks: bool):
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


def layout(shape: Shape, run_axis: int) -> dict[str, tuple[tuple[int, ...], Any]]:
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


def new_arrays(shape: Shape, run_axis: int, poisoned: bool = False) -> dict[str, np.ndarray]:
    """The arrays of `layout`, zeroed, or `poisoned` (NaN, -7, True): the body writes every
    element before it reads it, so its runs do not depend on what the arrays held (a kernel
    gets them uninitialized), and the CPU compilations run on poison to show it."""
    out = {}
    for name, (dims, dtype) in layout(shape, run_axis).items():
        if not poisoned:
            out[name] = np.zeros(dims, dtype=dtype)
        elif np.dtype(dtype) == np.float64:
            out[name] = np.full(dims, np.nan)
        else:
            out[name] = np.full(dims, -7 if np.dtype(dtype) != np.bool_ else True, dtype=dtype)
    return out


# the arrays the body indexes by asset or combination, at random positions (the others it
# indexes by task, or by a pick's slot, in step across runs)
PER_ASSET = frozenset(
    ("fa", "created", "removed", "stake", "tasks_run", "tasks_failed", "comb_members",
     "comb_rates", "live")
)  # fmt: skip

ORDER = (
    "failed", "live_count", "fa", "created", "removed", "stake", "tasks_run", "tasks_failed",
    "comb_members", "comb_rates", "picks", "live", "chosen", "counts",
)  # fmt: skip


def shape_of(config: CollectiveConfig, runs: int, capacity: int, record_picks: bool) -> Shape:
    return Shape(
        runs=runs,
        tasks=config.tasks,
        per_task=config.assets_per_task,
        capacity=capacity,
        comb_capacity=capacity * config.combinations_per_asset,
        comb_size=config.combination_size,
        pick_rows=config.tasks if record_picks else 1,
    )


def run_records(arrays: dict[str, np.ndarray], record_picks: bool) -> list[RunRecord | None]:
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


def batch_cpu(
    runner: Any, config: CollectiveConfig, states: np.ndarray, pool: np.ndarray | None,
    record_picks: bool, capacity: int,
) -> list[RunRecord | None]:  # fmt: skip
    shape = shape_of(config, len(states), capacity, record_picks)
    arrays = new_arrays(shape, run_axis=0, poisoned=True)
    pool_arg, fparams, iparams = pack_parameters(config, pool, record_picks)
    runner(states.copy(), pool_arg, fparams, iparams, *(arrays[name] for name in ORDER))
    return run_records(arrays, record_picks)


def initial_capacity(config: CollectiveConfig) -> int:
    """Room for the assets of a typical run; runs that need more are rerun with more."""
    replacements = config.tasks // config.replacement_interval
    refill = config.assets if config.replacement == "refill" else 1
    return config.assets + replacements * refill + 4 * config.assets_per_task + 16


def with_retries(
    batch: Callable[[np.ndarray, int], list[RunRecord | None]],
    config: CollectiveConfig,
    states: np.ndarray,
) -> list[RunRecord]:
    """Run every state; runs that ran out of room are rerun from their initial states with
    four times the room."""
    done: list[RunRecord | None] = [None] * len(states)
    todo = np.arange(len(states))
    capacity = initial_capacity(config)
    while todo.size:
        retry = []
        for i, record in zip(todo, batch(states[todo], capacity), strict=True):
            if record is None:
                retry.append(i)
            else:
                done[i] = record
        todo = np.array(retry, dtype=np.int64)
        capacity *= 4
    return done  # type: ignore[return-value]
