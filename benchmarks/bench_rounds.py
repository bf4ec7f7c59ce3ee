"""Tasks per second through the round pipeline on the in-memory book, and where the time goes.

A round of the pipeline (`mercat.runtime.round.run_round`): snapshot the book into a market,
clear it, turn the clearing into integer tasks, open them against the owners' terms, execute
(sampled), attest (direct), settle (the collective rule on every asset). Two markets:

- `rounds`: rounds of `--requests` requests on `--servers` servers, cleared by seed 000's
  `collective` selection (the mechanism whose cost is smallest, so the pipeline's own cost
  shows), each request needing `--replicas` servers;
- `seed000`: seed 000's experiment through the pipeline, one task per round (each settles
  before the next is drawn), against the compiled fast engine on the same configuration:
  `mercat simulate collective --engine pipeline` vs `--engine fast`.

    python benchmarks/bench_rounds.py [--rounds 20] [--requests 2000] [--servers 400]

Prints one JSON object. The `rounds` market runs three ways on the same seed, side by side:
the book settling each batch at once (`MemoryBook.settle`, what the pipeline uses), one task
after another (`settle_per_task`, the reference twin), and the batch again under Python's
default garbage collector instead of `fewer_collections`, the setting every simulation runs
its rounds under (`mercat.runtime.collector`); on a loaded machine the ratios mean more than
any one figure. `reference_loop_seconds` times a fixed Python workload
(`bench_pipeline.reference_loop`) before and after, since the host's own speed moved by up
to 2x from hour to hour on the build machine. Each run reports wall time and CPU time (on a
shared machine wall time also counts the waits for a core; CPU time much less so), and the
CPU time spent in Python's garbage collector. Stage times are CPU time, from wrapping each
stage's function with a timer (the wrapped pipeline runs a little slower than the plain one,
whose tasks/s is reported), with each stage's share and microseconds per task; the
collector's passes, which fall inside whichever stage allocated when they ran, are taken out
of the stages and reported as a stage of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import time
from collections import defaultdict

import numpy as np

from bench_pipeline import reference_loop
from mercat.clearing.collective import CollectiveSelection
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime import round as pipeline
from mercat.runtime.collector import fewer_collections
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.terms import Offer, RequestTerms

UNIT = 10**6


def _book(servers: int, rng: np.random.Generator) -> tuple[MemoryBook, dict[str, float]]:
    rule = IntegerRule(penalty=UNIT, reward=UNIT // 99, removal=True, stake_floor=10_000,
                       stake_cap=10 * UNIT)  # fmt: skip
    book = MemoryBook(rule, unit=UNIT, keep_history=False)
    for name in ("owners", "requesters"):
        book.open_account(name)
        book.deposit(name, 2**60)
    book.deposit("operator", 2**60)
    book.fund_pool("operator", 2**59)
    rates = {}
    for j in range(servers):
        name = f"s{j}"
        book.add_asset("owners", name, 10 * UNIT, Offer(name, capacity={"gpu": 16}))
        rates[name] = float(rng.random() ** 20)
    return book, rates


def _post(book: MemoryBook, round_: int, requests: int, replicas: int) -> None:
    for i in range(requests):
        terms = RequestTerms(f"r{round_}x{i}", max_price=UNIT, demand={"gpu": 1},
                             replicas=replicas)  # fmt: skip
        book.post_request("requesters", terms)


def run_rounds(
    rounds: int,
    requests: int,
    servers: int,
    replicas: int,
    timed: bool,
    per_task: bool = False,
    default_collector: bool = False,
) -> dict:
    rng = np.random.default_rng(1)
    book, rates = _book(servers, rng)
    if per_task:
        book.settle = book.settle_per_task  # type: ignore[method-assign]
    plan = RoundPlan(CollectiveSelection(), SampledExecution(rates))
    stages: dict[str, float] = defaultdict(float)
    originals = {}
    collector = _CollectorClock()
    if timed:
        targets = {
            "snapshot": (pipeline, "snapshot"),
            "assign": (pipeline, "assign"),
        }
        for label, (module, name) in targets.items():
            originals[label] = (module, name, getattr(module, name))
            setattr(module, name, _timer(getattr(module, name), stages, label, collector))
        for label, owner, name in (
            ("clear", plan.mechanism, "clear"),
            ("open", book, "open_tasks"),
            ("execute", plan.executor, "execute"),
            ("attest", plan.attestor, "attest"),
            ("settle", book, "settle"),
            ("state", book, "state"),
        ):
            setattr(owner, name, _timer(getattr(owner, name), stages, label, collector))
    tasks = 0
    elapsed = cpu = 0.0
    gc.callbacks.append(collector)
    # The simulations run their rounds under `fewer_collections` (mercat.runtime.collector);
    # so does this loop, unless Python's default collector is asked for, to compare.
    setting = contextlib.nullcontext() if default_collector else fewer_collections()
    try:
        with setting:
            for round_ in range(1, rounds + 1):
                _post(book, round_, requests, replicas)  # the requesters' work, not timed
                start, start_cpu = time.perf_counter(), time.process_time()
                collector.on = True
                report = run_round(book, round_, plan, rng)
                collector.on = False
                elapsed += time.perf_counter() - start
                cpu += time.process_time() - start_cpu
                tasks += len(report.tasks)
    finally:
        gc.callbacks.remove(collector)
        for module, name, original in originals.values():
            setattr(module, name, original)
    book.verify()
    out = {"settle": "per task (reference)" if per_task else "batch",
           "collector": "Python's default" if default_collector else "fewer_collections",
           "rounds": rounds, "requests_per_round": requests, "servers": servers,
           "replicas": replicas, "tasks": tasks, "seconds": round(elapsed, 3),
           "tasks_per_second": round(tasks / elapsed, 1),
           "cpu_seconds": round(cpu, 3), "tasks_per_cpu_second": round(tasks / cpu, 1),
           "garbage_collector_seconds": round(collector.seconds, 3)}  # fmt: skip
    if timed:
        stages["garbage collector"] = collector.seconds
        total = sum(stages.values())
        out["stage_seconds"] = {k: round(v, 3) for k, v in sorted(stages.items())}
        out["stage_share"] = {k: round(v / total, 3) for k, v in sorted(stages.items())}
        out["stage_us_per_task"] = {k: round(v / tasks * 1e6, 1) for k, v in sorted(stages.items())}
        out["untimed_us_per_task"] = round((cpu - total) / tasks * 1e6, 1)
    return out


def side_by_side(rounds: int, requests: int, servers: int, replicas: int) -> dict:
    """The batch settlement, its per-task reference, and the batch under Python's default
    garbage collector, on the same rounds, alternated (twice through the three) so that load
    changes hit all; of each, the run with the least CPU time per task is kept (CPU time: on
    a shared machine, wall time also counts the waits for a core)."""
    variants = {"batch": (False, False), "per_task_reference": (True, False),
                "batch_default_collector": (False, True)}  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(2):
        for name, (per_task, default_collector) in variants.items():
            runs[name].append(
                run_rounds(rounds, requests, servers, replicas, False, per_task, default_collector)
            )
    best = {name: max(r, key=lambda r: r["tasks_per_cpu_second"]) for name, r in runs.items()}
    rate = {name: r["tasks_per_cpu_second"] for name, r in best.items()}
    return {
        "replicas": replicas,
        **best,
        "speedup_cpu": round(rate["batch"] / rate["per_task_reference"], 2),
        "collector_speedup_cpu": round(rate["batch"] / rate["batch_default_collector"], 2),
    }


class _CollectorClock:
    """CPU time in Python's cyclic garbage collector while `on` (a `gc.callbacks` entry).
    It runs inside whichever stage allocates when a generation fills: the stage timers
    leave it out, and it is reported as a stage of its own."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.on = False
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.process_time()
        elif self.on:
            self.seconds += time.process_time() - self._start


def _timer(function, stages, label, collector):  # type: ignore[no-untyped-def]
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start, collected = time.process_time(), collector.seconds
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.process_time() - start
            stages[label] += spent - (collector.seconds - collected)

    return timed


def run_seed000(tasks: int, runs: int) -> dict:
    from mercat.scenarios.collective_config import CollectiveConfig
    from mercat.scenarios.collective_sim import simulate

    config = CollectiveConfig(mechanism="coll-sr", tasks=tasks)
    simulate(config.with_(tasks=100), runs=1, engine="fast")  # compile outside the clock
    out = {}
    for engine in ("fast", "pipeline"):
        start = time.perf_counter()
        simulate(config, runs=runs, seed=1, engine=engine)
        seconds = time.perf_counter() - start
        out[engine] = {"runs": runs, "tasks": tasks * runs, "seconds": round(seconds, 3),
                       "tasks_per_second": round(tasks * runs / seconds, 1)}  # fmt: skip
    out["fast_over_pipeline"] = round(
        out["fast"]["tasks_per_second"] / out["pipeline"]["tasks_per_second"], 1
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=400)
    parser.add_argument("--seed000-tasks", type=int, default=10_000)
    parser.add_argument("--seed000-runs", type=int, default=2)
    args = parser.parse_args()
    loop_before = reference_loop()
    results = {
        "rounds": [
            side_by_side(args.rounds, args.requests, args.servers, replicas) for replicas in (1, 4)
        ],
        "rounds_where_time_goes": run_rounds(
            max(1, args.rounds // 4), args.requests, args.servers, 1, timed=True
        ),
        "seed000": run_seed000(args.seed000_tasks, args.seed000_runs),
        # The host's speed moves too (a virtual machine's neighbours): the same fixed
        # Python workload before and after, to compare runs of different hours as ratios.
        "reference_loop_seconds": [round(loop_before, 3), round(reference_loop(), 3)],
    }
    print(json.dumps({
        "benchmark": "round pipeline on the in-memory book",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        **results,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
