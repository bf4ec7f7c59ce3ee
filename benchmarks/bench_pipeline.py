"""Speed of scenarios run through the round pipeline, and where the time goes.

Section `cloudchain`: seed 002's 30-day market (`mercat simulate cloudchain`), 720 hourly
rounds of two double auctions each on an in-memory book.

- `month`: the whole run at the default 100 requesters: wall and CPU seconds (the goal: at
  most 10 s), seconds per hour of simulated market, tasks settled, microseconds per task;
- `stages`: the same run again with every stage timed (CPU seconds): posting requests, the
  book's state and the views, the snapshot, admission, the double auction, turning the
  clearing into tasks, opening them on the book, sampled execution, the oracles, settling,
  and the scenario's own bookkeeping (the rest);
- `scaling`: seconds per round and per task at several numbers of requesters (`--days`);
- `oracles`: the same short run with the vectorised quorum and with signed reports that
  the tally verifies (the reference twin of the verdicts);
- `garbage_collection`: of the month's CPU, the seconds Python's garbage collector spent,
  by generation (a full collection walks every object alive: the book's requests, kept
  all month, are most of them), and the objects it tracked at the end;
- `against` (with `--against DIR`): the month side by side with another copy of mercat's
  source (`DIR` holds the `mercat` package, say `git archive <commit> src | tar -x`): the
  two at the same time, each in a fresh process, `--pairs` times; both CPU times and their
  ratio per pair. Under load, absolute seconds move by a third from run to run, and runs
  one after the other by as much against each other; two runs at once share the load;
- `reference_loop_seconds`: a fixed pure-Python workload timed in the same run, so that
  runs on machines under different load can be compared as ratios.

The machine may be shared: wall time then exceeds CPU time; both are printed.

    python benchmarks/bench_pipeline.py [--section cloudchain] [--days 30] [--scaling-days 3]
        [--against DIR --pairs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace

from mercat.clearing.double_auction import DoubleAuction
from mercat.runtime import round as round_module
from mercat.runtime.admission import StakeAdmission
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.scenarios import cloudchain
from mercat.scenarios.cloudchain_config import CloudChainConfig
from mercat.scenarios.cloudchain_oracles import SimulatedOracles


def reference_loop() -> float:
    """CPU seconds of a fixed pure-Python workload (dictionary updates and integer sums,
    the kind of work a round does)."""
    start = time.process_time()
    book: dict[str, int] = {}
    for i in range(1_000_000):
        key = f"k{i % 997}"
        book[key] = book.get(key, 0) + i
    sum(book.values())
    return time.process_time() - start


def _timed_run(config: CloudChainConfig, seed: int = 1) -> dict[str, float]:
    collected: dict[int, float] = defaultdict(float)
    started = [0.0]
    walked = [0]  # objects alive at the last full collection
    counting = [0.0]  # CPU spent counting them: not the run's

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if info["generation"] == 2:
                count_start = time.process_time()
                walked[0] = len(gc.get_objects())
                counting[0] += time.process_time() - count_start
            started[0] = time.process_time()
        else:
            collected[info["generation"]] += time.process_time() - started[0]

    gc.callbacks.append(on_collection)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        result = cloudchain.simulate(config, seed=seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu - counting[0]
    finally:
        gc.callbacks.remove(on_collection)
    return {
        "garbage_collection_cpu_seconds": {
            f"generation {g}": round(collected[g], 3) for g in sorted(collected)
        },
        "garbage_collection_share": sum(collected.values()) / cpu,
        "objects_walked_by_the_last_full_collection": walked[0],
        "requesters": config.requesters,
        "days": config.days,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_ms_per_round": 1e3 * cpu / config.rounds,
        "tasks": result.tasks,
        "tasks_per_round": result.tasks / config.rounds,
        "cpu_us_per_task": 1e6 * cpu / result.tasks,
    }


@contextmanager
def _stage_timers(totals: dict[str, float]):  # type: ignore[no-untyped-def]
    """Wrap each stage's function so that its CPU time adds to `totals[stage]`."""
    patched = []

    def wrap(owner, name: str, stage: str) -> None:  # type: ignore[no-untyped-def]
        original = getattr(owner, name)

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                totals[stage] += time.process_time() - start

        setattr(owner, name, timed)
        patched.append((owner, name, original))

    wrap(MemoryBook, "post_request", "post requests")
    wrap(MemoryBook, "expire", "book state and expiry")
    wrap(MemoryBook, "state", "book state and expiry")
    wrap(round_module, "snapshot", "snapshot")
    wrap(StakeAdmission, "admit", "stake-weighted admission")
    wrap(DoubleAuction, "clear", "double auction")
    wrap(round_module, "assign", "clearing to tasks (money rule)")
    wrap(MemoryBook, "open_tasks", "open tasks on the book")
    wrap(SampledExecution, "execute", "sampled execution")
    wrap(SimulatedOracles, "attest", "oracles")
    wrap(MemoryBook, "settle", "settle on the book")
    wrap(cloudchain, "capacity_left", "views (capacity left)")
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def bench_stages(config: CloudChainConfig) -> dict[str, object]:
    totals: dict[str, float] = defaultdict(float)
    with _stage_timers(totals):
        cpu = time.process_time()
        cloudchain.simulate(config, seed=1)
        cpu = time.process_time() - cpu
    stages = dict(sorted(totals.items(), key=lambda item: -item[1]))
    stages["scenario (arrivals, tallies, reposts, views' filters)"] = cpu - sum(totals.values())
    return {
        "cpu_seconds_timed_run": cpu,
        "cpu_seconds": {k: round(v, 3) for k, v in stages.items()},
        "share": {k: round(v / cpu, 3) for k, v in stages.items()},
    }


_MONTH_IN_A_PROCESS = """
import json, sys, time
from mercat.scenarios.cloudchain import simulate
from mercat.scenarios.cloudchain_config import CloudChainConfig
import mercat
simulate(CloudChainConfig(days=1), seed=1)
cpu = time.process_time()
result = simulate(CloudChainConfig(days=int(sys.argv[1])), seed=1)
cpu = time.process_time() - cpu
print(json.dumps({"cpu_seconds": cpu, "tasks": result.tasks, "mercat": mercat.__file__}))
"""


def bench_against(other_src: str, days: int, pairs: int) -> dict[str, object]:
    """The month with this mercat and with the one in `other_src`, `pairs` times, the two
    at the same time (one process each): on a shared machine both then run under the same
    load, so their ratio holds where the seconds do not (run one after the other, the two
    moved by a third against each other)."""
    runs: dict[str, list[float]] = {"this": [], "other": []}
    tasks: dict[str, int] = {}
    for _ in range(pairs):
        started = {}
        for which in ("other", "this"):
            env = dict(os.environ)
            if which == "other":
                env["PYTHONPATH"] = os.path.abspath(other_src)
            else:
                env.pop("PYTHONPATH", None)
            started[which] = subprocess.Popen(
                [sys.executable, "-c", _MONTH_IN_A_PROCESS, str(days)],
                stdout=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
        for which, process in started.items():
            out, _ = process.communicate(timeout=600)
            if process.returncode != 0:
                raise SystemExit(f"--against: the {which} run failed")
            run = json.loads(out)
            if (which == "other") != run["mercat"].startswith(os.path.abspath(other_src)):
                raise SystemExit(f"--against: the {which} run imported {run['mercat']}")
            runs[which].append(run["cpu_seconds"])
            tasks[which] = run["tasks"]
    ratios = [t / o for t, o in zip(runs["this"], runs["other"], strict=True)]
    return {
        "other_src": os.path.abspath(other_src),
        "days": days,
        "cpu_seconds": runs,
        "this_over_other_per_pair": ratios,
        "this_over_other_median": statistics.median(ratios),
        "same_tasks": tasks["this"] == tasks["other"],
    }


def bench_cloudchain(days: int, scaling_days: int) -> dict[str, object]:
    base = CloudChainConfig(days=days)
    cloudchain.simulate(replace(base, days=1), seed=1)  # imports and caches outside the timing
    section: dict[str, object] = {"reference_loop_seconds_before": reference_loop()}
    month = _timed_run(base)
    month["goal_seconds"] = 10.0
    month["cpu_over_reference_loop"] = (
        month["cpu_seconds"] / section["reference_loop_seconds_before"]
    )
    section["month"] = month
    section["stages"] = bench_stages(replace(base, days=scaling_days))
    section["scaling"] = [
        _timed_run(replace(base, requesters=n, days=scaling_days)) for n in (10, 100, 300)
    ]
    short = replace(base, requesters=20, days=1)
    plain = _timed_run(short)
    signed = _timed_run(replace(short, signed_reports=True))
    section["oracles"] = {
        "tasks": plain["tasks"],
        "vectorised_cpu_seconds": plain["cpu_seconds"],
        "signed_cpu_seconds": signed["cpu_seconds"],
        "signed_extra_us_per_task": 1e6
        * (signed["cpu_seconds"] - plain["cpu_seconds"])
        / plain["tasks"],
    }
    section["reference_loop_seconds_after"] = reference_loop()
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--section", choices=["cloudchain"], default="cloudchain")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scaling-days", type=int, default=3)
    parser.add_argument("--against", metavar="DIR", help="another mercat source to compare")
    parser.add_argument("--pairs", type=int, default=3, help="alternating runs with --against")
    args = parser.parse_args()
    result: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
    }
    if args.section == "cloudchain":
        result["cloudchain"] = bench_cloudchain(args.days, args.scaling_days)
        if args.against:
            result["cloudchain"]["against"] = bench_against(args.against, args.days, args.pairs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
