"""The compiled engine of the collective-incentive marketplace: numba, one thread per run.

Same algorithm and same random draws as `collective_reference.py` (read that module for the
model), written over flat arrays so numba compiles it to machine code:

- the live assets are a compact int32 array kept in arrival order (removal shifts the tail,
  as `list.remove` does in the reference);
- xoshiro256** is inlined (`_next_u64`, `_uniform`, `_below` mirror `rng.Xoshiro256`);
- stake-weighted picks are rejection draws against the largest stake ever held, so a pick
  costs O(1) expected trials instead of a pass over the stakes;
- a task's outcome is one uniform against the product of the survival probabilities.

Runs are independent streams, so `prange` spreads them over cores without changing any
result. `cache=True` keeps the compiled code across invocations (in __pycache__).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord

_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U32 = np.uint64(32)
_U45 = np.uint64(45)
_U57 = np.uint64(57)
_U19 = np.uint64(19)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)
_TWO_POW_MINUS_53 = 1.0 / (1 << 53)


@nb.njit(cache=True, inline="always")
def _next_u64(s: np.ndarray) -> np.uint64:
    s1 = s[1]
    x = s1 * _U5
    result = ((x << _U7) | (x >> _U57)) * _U9
    t = s1 << _U17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s3 = s[3]
    s[3] = (s3 << _U45) | (s3 >> _U19)
    return result


@nb.njit(cache=True, inline="always")
def _uniform(s: np.ndarray) -> float:
    return float(_next_u64(s) >> _U11) * _TWO_POW_MINUS_53


@nb.njit(cache=True, inline="always")
def _below(s: np.ndarray, n: int) -> int:
    un = np.uint64(n)
    m = (_next_u64(s) >> _U32) * un
    low = m & _MASK32
    if low < un:
        threshold = (_TWO32 - un) % un
        while low < threshold:
            m = (_next_u64(s) >> _U32) * un
            low = m & _MASK32
    return int(m >> _U32)


@nb.njit(cache=True)
def _stream(state: np.ndarray, kinds: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Draws for the RNG differential test: kind 0 = u64, 1 = uniform, 2 = below(bound)."""
    s = state.copy()
    out = np.empty(kinds.size, dtype=np.float64)
    for i in range(kinds.size):
        if kinds[i] == 0:
            out[i] = float(_next_u64(s) >> _U11)  # 53 bits survive the float
        elif kinds[i] == 1:
            out[i] = _uniform(s)
        else:
            out[i] = _below(s, bounds[i])
    return out


@nb.njit(cache=True)
def _add_asset(
    s, now, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
    fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
):  # fmt: skip
    """Create asset n_assets (returns the new n_assets, n_live, n_comb; -1 on overflow)."""
    if n_assets >= fa.size:
        return -1, n_live, n_comb
    new_id = n_assets
    if use_pool:
        fa[new_id] = pool[_below(s, pool.size)]
    else:
        fa[new_id] = _uniform(s) ** inv_alpha
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
            candidate = live[_below(s, n_live)]
            duplicate = False
            for j in range(got):
                if comb_members[n_comb, j] == candidate:
                    duplicate = True
                    break
            if not duplicate:
                comb_members[n_comb, got] = candidate
                got += 1
        comb_members[n_comb, comb_size - 1] = new_id
        if use_pool:
            comb_rates[n_comb] = pool[_below(s, pool.size)]
        else:
            comb_rates[n_comb] = _uniform(s) ** inv_alpha
        n_comb += 1
    live[n_live] = new_id
    return n_assets + 1, n_live + 1, n_comb


@nb.njit(cache=True)
def _simulate_run(
    s, pool, use_pool, inv_alpha, n_initial, n_tasks, per_task, stake0, penalty, reward,
    moves_stakes, has_floor, floor, has_cap, cap, removal, inclusive, weighted,
    interval, refill, asset_target, combos_per_asset, comb_size, record_picks,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks,
):  # fmt: skip
    """One run; returns (n_assets, n_combinations, tp, fp, ok). ok = 0 on array overflow."""
    live = np.empty(fa.size, dtype=np.int32)
    chosen = np.empty(per_task, dtype=np.int64)
    n_live = 0
    n_assets = 0
    n_comb = 0
    tp = 0
    fp = 0
    bound = stake0
    for _ in range(n_initial):
        n_assets, n_live, n_comb = _add_asset(
            s, 0, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
            fa, created, removed, stake, tasks_run, tasks_failed,
            comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
        )  # fmt: skip
        if n_assets < 0:
            return 0, 0, 0, 0, 0
    for task in range(1, n_tasks + 1):
        while n_live < per_task:
            n_assets, n_live, n_comb = _add_asset(
                s, task, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
                fa, created, removed, stake, tasks_run, tasks_failed,
                comb_members, comb_rates, n_comb, combos_per_asset, comb_size,
            )  # fmt: skip
            if n_assets < 0:
                return 0, 0, 0, 0, 0
        # pick
        got = 0
        while got < per_task:
            candidate = live[_below(s, n_live)]
            duplicate = False
            for j in range(got):
                if chosen[j] == candidate:
                    duplicate = True
                    break
            if duplicate:
                continue
            if weighted and not (_uniform(s) * bound < stake[candidate]):
                continue
            chosen[got] = candidate
            got += 1
        # outcome
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
        task_failed = _uniform(s) >= survival
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
        # replacement
        if task % interval == 0:
            while n_live < n_initial:
                n_assets, n_live, n_comb = _add_asset(
                    s, task, pool, use_pool, inv_alpha, stake0, live, n_live, n_assets,
                    fa, created, removed, stake, tasks_run, tasks_failed,
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


@nb.njit(cache=True, parallel=True)
def _simulate_runs(
    states, pool, use_pool, inv_alpha, n_initial, n_tasks, per_task, stake0, penalty, reward,
    moves_stakes, has_floor, floor, has_cap, cap, removal, inclusive, weighted,
    interval, refill, asset_target, combos_per_asset, comb_size, record_picks,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, counts,
):  # fmt: skip
    for r in nb.prange(states.shape[0]):
        s = states[r].copy()
        n_assets, n_comb, tp, fp, ok = _simulate_run(
            s, pool, use_pool, inv_alpha, n_initial, n_tasks, per_task, stake0, penalty,
            reward, moves_stakes, has_floor, floor, has_cap, cap, removal, inclusive, weighted,
            interval, refill, asset_target, combos_per_asset, comb_size, record_picks,
            failed[r], live_count[r], fa[r], created[r], removed[r], stake[r], tasks_run[r],
            tasks_failed[r], comb_members[r], comb_rates[r], picks[r],
        )  # fmt: skip
        counts[r, 0] = n_assets
        counts[r, 1] = n_comb
        counts[r, 2] = tp
        counts[r, 3] = fp
        counts[r, 4] = ok


def _initial_capacity(config: CollectiveConfig) -> int:
    """Room for the assets of a typical run; runs that need more are rerun with more."""
    replacements = config.tasks // config.replacement_interval
    refill = config.assets if config.replacement == "refill" else 1
    return config.assets + replacements * refill + 4 * config.assets_per_task + 16


def simulate_runs(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> list[RunRecord]:
    """Simulate len(states) runs in parallel; the same records as the reference engine."""
    states = np.ascontiguousarray(states, dtype=np.uint64).reshape(-1, 4)
    records: list[RunRecord | None] = [None] * len(states)
    todo = np.arange(len(states))
    capacity = _initial_capacity(config)
    while todo.size:
        batch = _run_batch(config, states[todo], pool, record_picks, capacity)
        retry = []
        for i, record in zip(todo, batch, strict=True):
            if record is None:
                retry.append(i)
            else:
                records[i] = record
        todo = np.array(retry, dtype=np.int64)
        capacity *= 4
    return records  # type: ignore[return-value]


def _run_batch(
    config: CollectiveConfig,
    states: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool,
    capacity: int,
) -> list[RunRecord | None]:
    runs, n_tasks, k = len(states), config.tasks, config.assets_per_task
    rule = config.rule
    size = config.combination_size
    comb_capacity = capacity * config.combinations_per_asset
    failed = np.zeros((runs, n_tasks), dtype=np.bool_)
    live_count = np.zeros((runs, n_tasks), dtype=np.int32)
    fa = np.zeros((runs, capacity))
    created = np.zeros((runs, capacity), dtype=np.int32)
    removed = np.zeros((runs, capacity), dtype=np.int32)
    stake = np.zeros((runs, capacity))
    tasks_run = np.zeros((runs, capacity), dtype=np.int32)
    tasks_failed = np.zeros((runs, capacity), dtype=np.int32)
    comb_members = np.zeros((runs, comb_capacity, size), dtype=np.int32)
    comb_rates = np.zeros((runs, comb_capacity))
    picks = np.zeros((runs, n_tasks if record_picks else 1, k), dtype=np.int32)
    counts = np.zeros((runs, 5), dtype=np.int64)
    use_pool = pool is not None
    _simulate_runs(
        states, pool if use_pool else np.zeros(1), use_pool, 1.0 / config.alpha,
        config.assets, n_tasks, k, float(config.stake), float(rule.penalty), float(rule.reward),
        rule.moves_stakes, rule.stake_floor is not None, float(rule.stake_floor or 0.0),
        rule.stake_cap is not None, float(rule.stake_cap or 0.0), rule.removal,
        rule.removal_inclusive, config.mechanism_spec.stake_weighted,
        config.replacement_interval, config.replacement == "refill", float(config.asset_target),
        config.combinations_per_asset, size, record_picks,
        failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
        comb_members, comb_rates, picks, counts,
    )  # fmt: skip
    out: list[RunRecord | None] = []
    for r in range(runs):
        n, c, tp, fp, ok = (int(v) for v in counts[r])
        if not ok:
            out.append(None)
            continue
        out.append(
            RunRecord(
                failed=failed[r],
                live_assets=live_count[r],
                failure_rate=fa[r, :n].copy(),
                created_at=created[r, :n].copy(),
                removed_at=removed[r, :n].copy(),
                stake=stake[r, :n].copy(),
                tasks_run=tasks_run[r, :n].copy(),
                tasks_failed=tasks_failed[r, :n].copy(),
                true_positives=tp,
                false_positives=fp,
                combination_members=comb_members[r, :c].copy(),
                combination_rates=comb_rates[r, :c].copy(),
                picks=picks[r] if record_picks else None,
            )
        )
    return out


def stream(state: np.ndarray, kinds: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Compiled twin of a sequence of `Xoshiro256` draws (for the RNG differential test)."""
    return _stream(
        np.asarray(state, dtype=np.uint64),
        np.asarray(kinds, dtype=np.int64),
        np.asarray(bounds, dtype=np.int64),
    )
