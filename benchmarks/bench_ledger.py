"""Settlements per second on the ledger: SQLite and PostgreSQL, threads and processes.

Each settlement is one signed `Settle` message carrying one signed oracle report, on a task
of 4 assets (so: verify 2 signatures, lock the task and 11 books, pay 4 owners, move 4
stakes against the reward pool, record the report, commit). The tasks are opened before
the clock starts; the messages are signed before it too (signing is the client's work).
Writers split the settlements evenly; the clock runs from the moment all writers are
ready until the last one is done.

Both stores are durable: SQLite with synchronous=FULL (the ledger's default), PostgreSQL
with fsync on (a server this script starts with mercat.ledger.pgserver). Every settlement
locks the one reward-pool book, so settlements serialize on it in both stores: more
writers hide latency (signature checks, round trips) but cannot run settlements in
parallel.

    python benchmarks/bench_ledger.py [--settlements 300] [--threads 1,4] [--processes 4]

Prints one JSON object. A store that cannot be had here is reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import threading
import time

from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    Escrow,
    FundPool,
    IntegerRule,
    Ledger,
    LedgerConfig,
    OpenAccount,
    OpenTask,
    Settle,
    SignedMessage,
    Signer,
)
from mercat.ledger.pgserver import PostgresUnavailable, TemporaryPostgres
from mercat.oracle import OracleReport, SignedReport

ASSETS_PER_TASK = 4


def prepare(url: str, settlements: int) -> list[str]:
    """A funded market with `settlements` open tasks; the signed settlements, as JSON."""
    operator, provider, requester, oracle = (Keypair.generate() for _ in range(4))
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    config = LedgerConfig(operator=operator.public, rule=rule, unit=1)
    setup = Ledger.init(url, config, durable=False)  # setup speed does not matter
    op, prov, req = Signer(operator), Signer(provider), Signer(requester)
    for message in (
        prov.sign(OpenAccount()),
        req.sign(OpenAccount()),
        op.sign(AddOracle(oracle=oracle.public)),
        op.sign(Deposit(account=provider.public, amount=10**9)),
        op.sign(Deposit(account=requester.public, amount=10**9)),
        op.sign(Deposit(account=operator.public, amount=10**9)),
        op.sign(FundPool(amount=10**9)),
        req.sign(Escrow(request="bench", amount=10**8)),
    ):
        setup.submit(message)
    assets = [f"gpu{i}" for i in range(8)]
    for asset in assets:
        setup.submit(prov.sign(AddAsset(asset=asset, stake=10**6)))
    messages = []
    for i in range(settlements):
        chosen = tuple(assets[(i + k) % len(assets)] for k in range(ASSETS_PER_TASK))
        task = f"t{i}"
        setup.submit(op.sign(OpenTask(round=1, task=task, request="bench", assets=chosen,
                                      payouts=(3, 2, 1, 1))))  # fmt: skip
        report = SignedReport.sign(OracleReport(1, task, i % 10 != 0, True, 100), oracle)
        messages.append(op.sign(Settle(round=1, task=task, reports=(report,))).to_json())
    setup.close()
    return messages


def _submit(ledger: Ledger, messages: list[str]) -> int:
    applied = 0
    for text in messages:
        applied += ledger.submit(SignedMessage.from_json(text)).applied
    return applied


def run_threads(url: str, messages: list[str], writers: int) -> float:
    ledger = Ledger(url)
    shares = [messages[i::writers] for i in range(writers)]
    ready = threading.Barrier(writers + 1)
    done: list[int] = [0] * writers

    def work(i: int) -> None:
        ready.wait()
        done[i] = _submit(ledger, shares[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ledger.close()
    assert sum(done) == len(messages), "every settlement applies exactly once"
    return elapsed


def _process_worker(url: str, messages: list[str], ready, go, results) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(url)
    ledger.books()  # open a connection before the clock starts
    ready.put(1)
    go.wait()
    results.put(_submit(ledger, messages))
    ledger.close()


def run_processes(url: str, messages: list[str], writers: int) -> float:
    context = multiprocessing.get_context("fork")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    children = [
        context.Process(
            target=_process_worker, args=(url, messages[i::writers], ready, go, results)
        )
        for i in range(writers)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    start = time.perf_counter()
    go.set()
    applied = sum(results.get(timeout=600) for _ in children)
    elapsed = time.perf_counter() - start
    for child in children:
        child.join()
    assert applied == len(messages), "every settlement applies exactly once"
    return elapsed


def measure(store: str, url_factory, args) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    plans = [("threads", n) for n in args.threads] + [("processes", n) for n in args.processes]
    for mode, writers in plans:
        url = url_factory()
        messages = prepare(url, args.settlements)
        runner = run_threads if mode == "threads" else run_processes
        seconds = runner(url, messages, writers)
        check = Ledger(url)
        report = check.verify(signatures=False)
        check.close()
        rows.append({
            "store": store, "mode": mode, "writers": writers, "settlements": len(messages),
            "seconds": round(seconds, 3), "per_second": round(len(messages) / seconds, 1),
            "verified": report.ok,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=300)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--processes", default="4")
    args = parser.parse_args()
    args.threads = [int(n) for n in args.threads.split(",") if n]
    args.processes = [int(n) for n in args.processes.split(",") if n]

    results: list[dict] = []
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))
        results += measure("sqlite", lambda: f"sqlite:///{tmp}/bench{next(counter)}.db", args)
    try:
        with TemporaryPostgres(durable=True) as server:
            counter = iter(range(10**6))
            results += measure(
                "postgresql", lambda: server.create_database(f"bench{next(counter)}"), args
            )
    except PostgresUnavailable as exc:
        unavailable["postgresql"] = str(exc)

    side_by_side: dict[str, dict[str, float]] = {}
    for row in results:
        side_by_side.setdefault(f"{row['mode']} x{row['writers']}", {})[row["store"]] = row[
            "per_second"
        ]
    print(json.dumps({
        "benchmark": "ledger settlements per second (durable stores)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "assets_per_task": ASSETS_PER_TASK,
        "side_by_side": side_by_side,
        "results": results,
        "unavailable": unavailable,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
