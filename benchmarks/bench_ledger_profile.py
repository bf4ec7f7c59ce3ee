"""Where a batch settlement's time goes, per task: the settling thread's CPU time split into
its stages, and the signature checks beside it.

Prepares the market of `bench_ledger.py` (4 assets per task, one oracle report each) on
SQLite or PostgreSQL, then settles it twice on two copies of the store: once plainly, timing
the settling thread (`time.thread_time`) and the whole process (the report worker, if any,
included), and once under cProfile (timing the settling thread's CPU, not the wall clock),
whose cumulative time per stage gives each stage's share. Shares are scaled to the plain
run's thread time (cProfile slows Python more than the database's C code, so the split is
an estimate; the total is measured).

    python benchmarks/bench_ledger_profile.py [--store sqlite|postgresql] [--tasks 3000]

Prints one JSON object: the plain run's rate and CPU per task, each stage's µs per task, and
the load average before and after (on a shared machine every figure moves with it).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_ledger  # noqa: E402
from mercat.auctioneer.measure import process_cpu_seconds  # noqa: E402
from mercat.ledger import (  # noqa: E402
    Ledger,
    SettleTasks,
    SignedMessage,
    TaskReports,
    report_signatures,
)

#: (stage, the function whose cumulative time it is: file suffix, function name)
STAGES = [
    ("decode and check the message", "ledger/messages.py", "parse"),
    ("the message's own signature", "mercat/identity.py", "verify"),
    ("hand the reports to the checks", "ledger/report_signatures.py", "__init__"),
    ("resend check (all settled?)", "ledger/ledger.py", "_settled_entry_if_all"),
    ("read tasks", "ledger/book_txn.py", "prefetch_tasks"),
    ("read assets", "ledger/book_txn.py", "prefetch_assets"),
    ("read requests", "ledger/book_txn.py", "prefetch_requests"),
    ("read and lock books", "ledger/book_txn.py", "prefetch_books"),
    ("read relayed reports", "ledger/settlement.py", "_pending_reports"),
    ("quorum tally", "oracle/quorum.py", "tally"),
    ("money rule (settle_tasks)", "runtime/money.py", "settle_tasks"),
    ("write postings, balances, rows", "ledger/book_txn.py", "flush"),
    ("write reports", "ledger/settlement.py", "_store_reports"),
    ("record verdicts and stakes", "ledger/book_txn.py", "record_settlement"),
    ("commit", "sqlalchemy/engine/base.py", "_commit_impl"),
    ("wait for the signature checks", "ledger/report_signatures.py", "wait"),
]
TOTAL = ("ledger/ledger.py", "submit")


def _messages(ledger, op, reports, batches) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        op.sign(
            SettleTasks(round=1, settlements=tuple(TaskReports(t, (reports[t],)) for t in chunk))
        ).to_json()
        for chunk in batches
    ]


def _worker_cpu() -> float:
    """The report worker's user + system seconds (Linux), 0 without one."""
    worker = report_signatures._worker
    return 0.0 if worker is None else process_cpu_seconds(worker.process.pid)


def _settle(url: str, texts: list[str], profile: cProfile.Profile | None) -> dict:
    messages = [SignedMessage.from_json(t) for t in texts]
    ledger = Ledger(url)
    tasks = 0
    side = _worker_cpu()
    cpu, main, start = os.times(), time.thread_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    for message in messages:
        receipt = ledger.submit(message)
        assert receipt.applied
        tasks += receipt.result["settled"]
    if profile is not None:
        profile.disable()
    seconds = time.perf_counter() - start
    main = time.thread_time() - main
    after, side = os.times(), _worker_cpu() - side
    ledger.close()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    return {"tasks": tasks, "seconds": seconds, "main": main, "process": used, "worker": side}


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(
        row[3]
        for (path, _, function), row in stats.stats.items()  # type: ignore[attr-defined]
        if function == name and path.endswith(suffix)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    worker = report_signatures.start_worker()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            base = Path(tmp) / "base.db"
            ledger, op, reports, batches, _ = bench_ledger.prepare(
                f"sqlite:///{base}", args.tasks, args.batch
            )
            texts = _messages(ledger, op, reports, batches)
            ledger.close()
            urls = []
            for name in ("plain", "profiled"):
                shutil.copy(base, Path(tmp) / f"{name}.db")
                urls.append(f"sqlite:///{Path(tmp) / name}.db")
            plain = _settle(urls[0], texts, None)
            profile = cProfile.Profile(time.thread_time)
            profiled = _settle(urls[1], texts, profile)
        else:
            from bench_ledger_versions import _copy_database
            from mercat.ledger.pgserver import TemporaryPostgres

            with TemporaryPostgres(durable=True) as server:
                ledger, op, reports, batches, _ = bench_ledger.prepare(
                    server.create_database("base"), args.tasks, args.batch
                )
                texts = _messages(ledger, op, reports, batches)
                ledger.close()
                plain = _settle(_copy_database(server, "base", "plain"), texts, None)
                profile = cProfile.Profile(time.thread_time)
                profiled = _settle(_copy_database(server, "base", "profiled"), texts, profile)
    stats = pstats.Stats(profile)
    total = _cumulative(stats, *TOTAL)
    per_task = plain["main"] / plain["tasks"] * 1e6
    stages = {
        stage: round(_cumulative(stats, suffix, name) / total * per_task, 1)
        for stage, suffix, name in STAGES
    }
    stages["everything else in the settling thread"] = round(per_task - sum(stages.values()), 1)
    print(json.dumps({
        "benchmark": "where a batch settlement's time goes, per task",
        "store": args.store, "tasks": args.tasks, "batch": args.batch,
        "report_worker": worker,
        "tasks_per_second": round(plain["tasks"] / plain["seconds"], 1),
        "settling_thread_cpu_us_per_task": round(per_task, 1),
        "process_cpu_us_per_task": round(plain["process"] / plain["tasks"] * 1e6, 1),
        "report_worker_cpu_us_per_task": round(plain["worker"] / plain["tasks"] * 1e6, 1),
        "profiled_tasks_per_second": round(profiled["tasks"] / profiled["seconds"], 1),
        "stages_us_per_task": stages,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
