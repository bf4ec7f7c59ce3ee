"""Batch settlement of two mercat source trees side by side, on copies of one prepared store.

On a shared, loaded machine absolute rates move by 2x from one minute to the next; what
survives is a ratio measured in the same minutes. This script prepares one market (the
tasks of `bench_ledger.py`: 4 assets per task, one oracle report each, every signature
checked) and the signed `SettleTasks` messages once, then settles a fresh copy of that store
with each tree in turn (`--rounds` times, alternating), each in its own process:

    python benchmarks/bench_ledger_versions.py --old /path/to/old/src [--tasks 2000]

SQLite copies are file copies; PostgreSQL copies are `CREATE DATABASE ... TEMPLATE` of the
prepared database (a durable server this script starts). Prints one JSON object: per tree and
store the tasks per second of every round (wall clock), the CPU time per task of the settling
process (user + system, all its threads, plus its report worker process where the tree has
one, started before the clock) and of its main thread (less sensitive to the load than wall
clock, though not immune: a loaded machine also slows each CPU second).

`--old-checks threads` has the old tree check signatures in threads only; with `--old`
naming this tree's own src, that measures the report worker against the threads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEW_SRC = HERE.parent / "src"

SETTLE = r"""
import json, os, sys, time
from mercat.ledger import Ledger, SignedMessage
from mercat.ledger import report_signatures
from mercat.auctioneer.measure import process_cpu_seconds
url, path, checks = sys.argv[1], sys.argv[2], sys.argv[3]
worker = None
if checks == "threads":
    report_signatures.WORKER_PROCESS = False
elif hasattr(report_signatures, "start_worker"):  # a tree with the report worker: warm it
    assert report_signatures.start_worker()
    worker = report_signatures._worker.process.pid

def worker_cpu():  # the worker's user + system seconds (Linux), 0 without one
    return 0.0 if worker is None else process_cpu_seconds(worker)

messages = [SignedMessage.from_json(t) for t in json.load(open(path))]
ledger = Ledger(url)
tasks = 0
cpu, main, side, start = os.times(), time.thread_time(), worker_cpu(), time.perf_counter()
for message in messages:
    receipt = ledger.submit(message)
    assert receipt.applied
    tasks += receipt.result["settled"]
seconds = time.perf_counter() - start
main = time.thread_time() - main
after, side = os.times(), worker_cpu() - side
ok = ledger.verify(signatures=False).ok
ledger.close()
used = (after.user - cpu.user) + (after.system - cpu.system) + side
print(json.dumps({"tasks": tasks, "seconds": seconds, "cpu": used, "main": main, "verified": ok}))
"""


def prepare(url: str, tasks: int, batch: int, messages_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    import bench_ledger
    from mercat.ledger import SettleTasks, TaskReports

    ledger, op, reports, batches, _ = bench_ledger.prepare(url, tasks, batch)
    texts = [
        op.sign(
            SettleTasks(round=1, settlements=tuple(TaskReports(t, (reports[t],)) for t in chunk))
        ).to_json()
        for chunk in batches
    ]
    ledger.close()
    messages_path.write_text(json.dumps(texts))


def settle(src: Path, url: str, messages_path: Path, checks: str = "default") -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, "-c", SETTLE, url, str(messages_path), checks],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def summary(runs: list[dict]) -> dict:
    rates = [round(r["tasks"] / r["seconds"], 1) for r in runs]
    cpu = [round(r["cpu"] / r["tasks"] * 1e6, 1) for r in runs]
    main = [round(r["main"] / r["tasks"] * 1e6, 1) for r in runs]
    return {
        "per_second": rates,
        "best_per_second": max(rates),
        "cpu_us_per_task": cpu,
        "best_cpu_us_per_task": min(cpu),
        "main_thread_cpu_us_per_task": main,
        "verified": all(r["verified"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the other tree's src folder")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument(
        "--old-checks", choices=("default", "threads"), default="default",
        help="threads: the old tree checks signatures in threads only (with --old pointing "
        "at this tree, threads against the report worker)",
    )  # fmt: skip
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": NEW_SRC}
    checks = {"old": args.old_checks, "new": "default"}
    results: dict[str, dict[str, dict]] = {}
    unavailable: dict[str, str] = {}
    stores = args.stores.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        messages = root / "messages.json"
        if "sqlite" in stores:
            prepare(f"sqlite:///{root}/base.db", args.tasks, args.batch, messages)
            runs: dict[str, list[dict]] = {name: [] for name in trees}
            for r in range(args.rounds):
                for name, src in trees.items():
                    copy = root / f"{name}{r}.db"
                    shutil.copy(root / "base.db", copy)
                    runs[name].append(settle(src, f"sqlite:///{copy}", messages, checks[name]))
                    copy.unlink()
            results["sqlite"] = {name: summary(v) for name, v in runs.items()}
        if "postgresql" in stores:
            from mercat.ledger.pgserver import PostgresUnavailable, TemporaryPostgres

            try:
                with TemporaryPostgres(durable=True) as server:
                    prepare(server.create_database("base"), args.tasks, args.batch, messages)
                    runs = {name: [] for name in trees}
                    for r in range(args.rounds):
                        for name, src in trees.items():
                            url = _copy_database(server, "base", f"{name}{r}")
                            runs[name].append(settle(src, url, messages, checks[name]))
                    results["postgresql"] = {name: summary(v) for name, v in runs.items()}
            except PostgresUnavailable as exc:
                unavailable["postgresql"] = str(exc)
    ratios = {
        store: {
            "best_per_second": round(r["new"]["best_per_second"] / r["old"]["best_per_second"], 2),
            "best_cpu_per_task": round(
                r["new"]["best_cpu_us_per_task"] / r["old"]["best_cpu_us_per_task"], 2
            ),
        }
        for store, r in results.items()
    }
    print(json.dumps({
        "benchmark": "batch settlement, two source trees on copies of one store",
        "trees": {k: str(v) for k, v in trees.items()}, "checks": checks, "tasks": args.tasks,
        "batch": args.batch, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "new_over_old": ratios, "results": results, "unavailable": unavailable,
    }, indent=2))  # fmt: skip


def _copy_database(server, template: str, name: str) -> str:  # type: ignore[no-untyped-def]
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return server.url(name)


if __name__ == "__main__":
    main()
