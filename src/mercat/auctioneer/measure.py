"""Measurements of seed 003's Fig. 4 and Fig. 5 on provider processes (benchmarks/ and the
report use them; tests never time anything).

A round's time runs from generating the bids at the client to the client holding every
provider's Result (the seed's §6.1). Besides wall time, each row records the CPU seconds
the provider processes spent (from /proc, Linux): on a machine with fewer cores than
providers the providers queue for the CPU, and the busiest provider's CPU time is what a
round would take with one core per provider (plus messages), which is the seed's set-up.

- Fig. 4 (double auction): the trusted auctioneer (one provider process, k = 0) against
  k = 1, 2, 3 with 3, 5, 8 providers executing, for growing numbers of users.
- Fig. 5 (VCG): 8 providers, p = 1 (the trusted auctioneer), p = 2 (k = 3) and p = 4 (k = 1)
  groups computing the Clarke payments in parallel.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mercat.auctioneer.client import slowest_phases
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import instance_for, published_seed
from mercat.auctioneer.local import LocalCluster
from mercat.auctioneer.workloads import bids_for

FIG4_CONFIGS = ((1, 0), (3, 1), (5, 2), (8, 3))  # (providers executing, k); (1, 0): central
FIG5_GROUPS = ((1, 1, 0), (2, 8, 3), (4, 8, 1))  # (p, providers executing, k)
AUCTION_PROVIDERS = 8


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc); NaN where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


_REFERENCE: dict[tuple[Any, ...], Any] = {}


def _centralized(instance: Any, bids: Any, params: Any = None, seed: int = 0) -> Any:
    """The trusted auctioneer's outcome, computed once per market, mechanism options and
    coin seed (VCG takes seconds)."""
    options = None if params is None else (params.vcg_gap, params.tie_break)
    key = (instance.name, bids.digest(), options, seed)
    if key not in _REFERENCE:
        _REFERENCE[key] = instance.centralized(bids, seed, params)
    return _REFERENCE[key]


def _cpu(cluster: LocalCluster) -> dict[str, float]:
    return {p: process_cpu_seconds(proc.pid) for p, proc in cluster.processes.items()}


def run_config(
    mechanism: str,
    executing: int,
    k: int,
    users_grid: Sequence[int],
    *,
    groups: int = 0,
    rounds: int,
    warmup: int,
    seed: int,
    seeds: Sequence[int] | None = None,
    verify: bool = True,
    warmup_users: int | None = None,
    task_timeout: float = 3600.0,
    vcg_gap: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One cluster, every n of the grid: `warmup` unrecorded rounds then `rounds` rounds
    (markets seed, seed+1, ... or the given `seeds`). One row per n. `vcg_gap` > 0: VCG
    allocations and payments to that certified relative gap instead of proven optima."""
    params = ProtocolParams(
        providers=tuple(f"p{i + 1}" for i in range(executing)),
        k=k,
        mechanism=mechanism,
        groups=groups,
        opening="sealed",  # the client opens and closes each round: rounds back to back
        bid_window=10.0,
        phase_timeout=30.0,
        task_timeout=task_timeout,
        vcg_gap=vcg_gap,
    )
    instance = instance_for(mechanism)
    rows = []
    round_id = 0
    # No result log: the seed's providers keep none, and on SQLite it adds about 1 ms a
    # round at n = 1000 (docs/auctioneer.md), a third of the trusted auctioneer's round.
    with LocalCluster(params, result_log=False) as cluster:
        for index, n in enumerate(users_grid):
            # Warm-up rounds, unrecorded: imports, compiled code, buffers. With
            # `warmup_users`, once per cluster at that (small) size.
            if warmup_users is None or index == 0:
                size = n if warmup_users is None else warmup_users
                for w in range(warmup):
                    warm = bids_for(mechanism, 10**6 + w, size, AUCTION_PROVIDERS)
                    cluster.run_round(round_id, warm, cluster.round_timeout())
                    round_id += 1
            times, ok, equal = [], 0, True
            phases: dict[str, list[float]] = {}
            # CPU over the whole batch: /proc counts in clock ticks (10 ms), too coarse
            # for one short round.
            before = _cpu(cluster)
            for r in range(rounds):
                market_seed = seeds[r] if seeds is not None else seed + r
                started = time.perf_counter()
                bids = bids_for(mechanism, market_seed, n, AUCTION_PROVIDERS)
                result = cluster.run_round(round_id, bids, cluster.round_timeout())
                times.append(time.perf_counter() - started)
                round_id += 1
                ok += result.ok
                for name, seconds in slowest_phases(result.results.values()).items():
                    phases.setdefault(name, []).append(seconds)
                if verify and result.ok:
                    seed = published_seed(result.outcome)
                    equal &= result.outcome == _centralized(instance, bids, params, seed)
                if progress is not None:
                    progress(1)
            after = _cpu(cluster)
            used = [(after[p] - before[p]) / rounds for p in after]
            rows.append(
                {
                    "mechanism": mechanism,
                    "users": n,
                    "executing": executing,
                    "k": k,
                    "groups": params.payment_groups if mechanism == "vcg" else 1,
                    "rounds": rounds,
                    "ok_rounds": ok,
                    "outputs_equal_centralized": bool(equal) if verify else None,
                    "seconds_median": statistics.median(times),
                    "seconds_min": min(times),
                    "seconds_max": max(times),
                    "seconds_all": times,
                    "cpu_seconds_all_providers_per_round": sum(used),
                    "cpu_seconds_busiest_provider_per_round": max(used),
                    # When the slowest provider reached each milestone (median over rounds).
                    "phase_seconds_median": {
                        name: statistics.median(values) for name, values in phases.items()
                    },
                }
            )
    return rows


def fig4(
    users_grid: Iterable[int],
    *,
    rounds: int = 10,
    warmup: int = 2,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    grid = list(users_grid)
    rows = []
    for executing, k in FIG4_CONFIGS:
        rows += run_config(
            "double",
            executing,
            k,
            grid,
            rounds=rounds,
            warmup=warmup,
            seed=seed,
            progress=progress,
        )
    return rows


def protocol_cpu(
    users: int = 1000,
    *,
    rounds: int = 30,
    configs: Sequence[tuple[int, int]] = FIG4_CONFIGS,
    chunk: int = 10,
) -> list[dict[str, Any]]:
    """Fig. 4's configurations in one process, on the in-process transport and the virtual
    clock: the same signed messages, no sockets, no other process to share the CPU with.
    The CPU per round (all providers and the client) is what the protocol itself costs;
    what the process rows of Fig. 4 spend beyond it goes to ZeroMQ, TCP and the processes
    preempting each other.

    The configurations take turns, `chunk` rounds each, until each has run `rounds`: on a
    shared machine the CPU a round costs moves with the load (caches, frequency), and
    turns give every configuration the same minutes, so that their ratios hold. Each turn's
    clock starts at its first round, after its providers were set up.
    `cpu_over_trusted` is a row's CPU per provider over the first row's (the trusted
    auctioneer, k = 0, where the first row is one)."""
    from mercat.auctioneer.simulation import simulate_rounds
    from mercat.auctioneer.workloads import double_auction_bids

    markets = [double_auction_bids(seed, users, AUCTION_PROVIDERS) for seed in range(rounds)]
    params = {
        (executing, k): ProtocolParams(tuple(f"p{i + 1}" for i in range(executing)), k)
        for executing, k in configs
    }
    for config in configs:
        simulate_rounds(params[config], markets[:2])  # warm-up: imports, compiled code
    cpu = dict.fromkeys(configs, 0.0)
    delivered = dict.fromkeys(configs, 0)
    for first in range(0, rounds, max(1, chunk)):
        part = markets[first : first + max(1, chunk)]
        for config in configs:
            started: list[float] = []

            def start_clock(i: int, _nodes: object, started: list[float] = started) -> None:
                if i == 0:
                    started.append(time.process_time())

            done = simulate_rounds(params[config], part, between=start_clock)
            cpu[config] += time.process_time() - started[0]
            delivered[config] += sum(r.outcome() is not None for r in done)
    rows = []
    for executing, k in configs:
        per_round = cpu[(executing, k)] / rounds
        rows.append(
            {
                "users": users,
                "executing": executing,
                "k": k,
                "rounds": rounds,
                "ok_rounds": delivered[(executing, k)],
                "cpu_seconds_per_round": per_round,
                "cpu_seconds_per_provider": per_round / executing,
            }
        )
    trusted = rows[0]["cpu_seconds_per_provider"] if rows and rows[0]["k"] == 0 else None
    for row in rows:
        row["cpu_over_trusted"] = row["cpu_seconds_per_provider"] / trusted if trusted else None
    return rows


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_bound_seconds(total_cpu: float, busiest_cpu: float, processes: int, cpus: int) -> float:
    """The least wall time in which `processes` processes can spend `total_cpu` seconds of
    CPU on `cpus` cores, one of them `busiest_cpu`: no schedule does better."""
    return max(total_cpu / min(cpus, processes), busiest_cpu)


def _ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where either time is not measurable: a CPU time of
    0.0 is below the clock's resolution, and dividing by it gives nonsense (0× or ∞)."""
    if not (denominator > 0 and numerator > 0):
        return None
    return numerator / denominator


def fig4_bar(
    rows: list[dict[str, Any]], users: int = 1000, cpus: int | None = None
) -> dict[str, Any]:
    """mercat's goal at n = `users`: distributed ≤ 2× centralized and under 1 s.

    `cpu_floor_ratio` is what no protocol could beat on `cpus` cores: each of the executing
    providers does at least the trusted auctioneer's own work (take the bids, run A, sign
    the result), so a round needs at least executing × that CPU time / cpus of wall time.
    Above 2 the bar cannot be met on this machine however cheap the protocol's messages.
    `busiest_cpu_ratio` is the busiest provider's CPU per round over the trusted
    auctioneer's. Ratios whose reference time was not measurable (0.0 s) are None."""
    cpus = cpus or usable_cpus()
    at = {(r["executing"], r["k"]): r for r in rows if r["users"] == users}
    central = at.get((1, 0))
    if central is None:
        return {}
    central_cpu = central["cpu_seconds_busiest_provider_per_round"]
    out: dict[str, Any] = {
        "users": users,
        "cpus": cpus,
        "centralized_seconds": central["seconds_median"],
        "centralized_cpu_seconds": central_cpu,
    }
    for (executing, k), row in sorted(at.items()):
        if k == 0:
            continue
        ratio = _ratio(row["seconds_median"], central["seconds_median"])
        out[f"k{k}"] = {
            "executing": executing,
            "seconds": row["seconds_median"],
            "ratio_to_centralized": ratio,
            "within_2x": ratio is not None and ratio <= 2.0,
            "under_1s": row["seconds_median"] < 1.0,
            "cpu_floor_ratio": _ratio(
                cpu_bound_seconds(executing * central_cpu, central_cpu, executing, cpus),
                central["seconds_median"],
            ),
            # The busiest provider's CPU per round over the trusted auctioneer's: what a
            # round would take with a core per provider, before the network; far less
            # sensitive to other jobs on the machine than the wall times.
            "busiest_cpu_ratio": _ratio(row["cpu_seconds_busiest_provider_per_round"], central_cpu),
        }
    return out


def fig5(
    users_grid: Iterable[int],
    *,
    seeds: Sequence[int] = (0,),
    vcg_gap: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    grid = list(users_grid)
    rows = []
    for p, executing, k in FIG5_GROUPS:
        rows += run_config(
            "vcg",
            executing,
            k,
            grid,
            groups=p,
            rounds=len(seeds),
            warmup=1,
            warmup_users=10,
            seed=0,
            seeds=seeds,
            vcg_gap=vcg_gap,
            progress=progress,
        )
    return rows


def fig5_speedups(
    rows: list[dict[str, Any]], threshold: float = 10.0, cpus: int | None = None
) -> dict[str, Any]:
    """Speed-up of p = 2 and p = 4 over p = 1 at every n, and the headline: the largest n
    whose centralized run took at least `threshold` seconds.

    `pN_speedup_ceiling_on_cpus` is the most any schedule could give on `cpus` cores: the
    providers together spent the measured CPU time, which takes at least that over `cpus`
    of wall time (every provider computes the allocation; k+1 compute each payment)."""
    cpus = cpus or usable_cpus()
    central = {r["users"]: r for r in rows if r["groups"] == 1 and r["executing"] == 1}
    table = []
    for n, c in sorted(central.items()):
        entry: dict[str, Any] = {"users": n, "centralized_seconds": c["seconds_median"]}
        for r in rows:
            if r["users"] == n and r["executing"] > 1:
                g = r["groups"]
                entry[f"p{g}_seconds"] = r["seconds_median"]
                entry[f"p{g}_speedup"] = _ratio(c["seconds_median"], r["seconds_median"])
                entry[f"p{g}_busiest_provider_cpu"] = r["cpu_seconds_busiest_provider_per_round"]
                entry[f"p{g}_cpu_speedup_of_busiest_provider"] = _ratio(
                    c["cpu_seconds_busiest_provider_per_round"],
                    r["cpu_seconds_busiest_provider_per_round"],
                )
                floor = cpu_bound_seconds(
                    r["cpu_seconds_all_providers_per_round"],
                    r["cpu_seconds_busiest_provider_per_round"],
                    r["executing"],
                    cpus,
                )
                entry[f"p{g}_speedup_ceiling_on_cpus"] = _ratio(c["seconds_median"], floor)
        table.append(entry)
    eligible = [e for e in table if e["centralized_seconds"] >= threshold]
    return {
        "by_users": table,
        "headline": eligible[-1] if eligible else None,
        "threshold_seconds": threshold,
        "cpus": cpus,
    }
