"""Settlements per second on the ledger: one message per task against batches, on SQLite and
PostgreSQL, with every oracle signature checked.

Each task binds 4 assets (so a settlement verifies an oracle's signature, pays 4 owners,
moves 4 stakes against the reward pool, closes its request and refunds what is left of its
escrow). The tasks are opened before the clock starts, and the messages are signed before it
too (signing is the clients' and oracles' work):

- `single`: one `Settle` message per task, one transaction each (one writer thread): the
  reference, what the ledger did before batch settlement;
- `batch`: `SettleTasks` messages of `--batch` tasks each, one transaction per batch, the
  batch's report signatures verified while the transaction runs (by the report worker
  process from the second batch on, by threads for the first while the worker starts);
- `open`: the `OpenTasks` messages that opened the batch run's tasks, timed too (opening
  checks every task against its request's terms and its assets' offers).

Both stores are durable: SQLite with synchronous=FULL (the ledger's default), PostgreSQL
with fsync on (a server this script starts with mercat.ledger.pgserver).

    python benchmarks/bench_ledger.py [--tasks 5000] [--single 300] [--batch 1000]

Prints one JSON object, with where the batch settlement's time goes for each store, each part
timed again on its own after the run: `parse_seconds` (decoding and checking the messages),
`signature_checks_seconds` (every report checked one by one in one thread with
`SignedReport.verify`, the reference; in the run they are checked beside the
transaction, so the parts do not add up to the total). A store that cannot be had here is
reported with the reason.

The script runs against whatever `mercat` is on the path, so an older tree can be measured
side by side in the same session: `PYTHONPATH=/path/to/old/src python bench_ledger.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import mercat
from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    FundPool,
    IntegerRule,
    Ledger,
    LedgerConfig,
    Offer,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    RequestTerms,
    Settle,
    SettleTasks,
    SignedMessage,
    Signer,
    TaskReports,
    TaskTerms,
)
from mercat.ledger.messages import parse
from mercat.ledger.pgserver import PostgresUnavailable, TemporaryPostgres
from mercat.oracle import OracleReport, SignedReport

ASSETS_PER_TASK = 4
ASSETS = 8
SETUP_OPTIONS = "?options=-csynchronous_commit%3Doff"


def prepare(url: str, tasks: int, batch: int) -> tuple[Ledger, Signer, list, list, float]:
    """A funded market with `tasks` requests; the OpenTasks messages (in batches) are timed
    here. Returns the ledger, the operator's signer, the per-task reports, the batches of
    task names, and the seconds the openings took."""
    operator, provider, requester, oracle = (Keypair.generate() for _ in range(4))
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    # The market is set up without waiting for an fsync per message (thousands of requests,
    # one message each: SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off for this
    # connection); what is timed runs on the store reopened durable.
    setup_url = url + SETUP_OPTIONS if url.startswith("postgresql") else url
    config = LedgerConfig(operator=operator.public, rule=rule, unit=1)
    ledger = Ledger.init(setup_url, config, durable=False)
    op, prov, req = (Signer(k, ledger.id) for k in (operator, provider, requester))
    for message in (
        prov.sign(OpenAccount()),
        req.sign(OpenAccount()),
        op.sign(AddOracle(oracle=oracle.public)),
        op.sign(Deposit(account=provider.public, amount=10**9)),
        op.sign(Deposit(account=requester.public, amount=10**12)),
        op.sign(Deposit(account=operator.public, amount=10**9)),
        op.sign(FundPool(amount=10**9)),
    ):
        ledger.submit(message)
    assets = [f"gpu{i}" for i in range(ASSETS)]
    for asset in assets:
        ledger.submit(prov.sign(AddAsset(asset=asset, stake=10**6)))
        ledger.submit(prov.sign(PostOffer(offer=Offer(asset, cost=1))))
    for i in range(tasks):
        terms = RequestTerms(f"r{i}", max_price=20, replicas=ASSETS_PER_TASK)
        ledger.submit(req.sign(PostRequest(terms=terms)))
    ledger.close()
    ledger = Ledger(url, durable=True)
    opened = 0.0
    names = [f"t{i}" for i in range(tasks)]
    batches = [names[i : i + batch] for i in range(0, tasks, batch)]
    for chunk in batches:
        terms = tuple(
            TaskTerms(
                name, f"r{name[1:]}",
                tuple(assets[(int(name[1:]) + k) % ASSETS] for k in range(ASSETS_PER_TASK)),
                (3, 2, 1, 1), 10,
            )
            for name in chunk
        )  # fmt: skip
        message = op.sign(OpenTasks(round=1, tasks=terms))
        start = time.perf_counter()
        ledger.submit(message)
        opened += time.perf_counter() - start
    reports = {
        name: SignedReport.sign(
            OracleReport(1, name, int(name[1:]) % 10 != 0, True, 100, None, ledger.id), oracle
        )
        for name in names
    }
    return ledger, op, reports, batches, opened


def run_single(url: str, tasks: int) -> dict:
    ledger, op, reports, _, _ = prepare(url, tasks, 1000)
    messages = [
        op.sign(Settle(round=1, task=t, reports=(r,))).to_json() for t, r in reports.items()
    ]
    start = time.perf_counter()
    for text in messages:
        assert ledger.submit(SignedMessage.from_json(text)).applied
    seconds = time.perf_counter() - start
    ok = ledger.verify(signatures=False).ok
    ledger.close()
    return {"tasks": tasks, "seconds": round(seconds, 3), "per_second": round(tasks / seconds, 1),
            "verified": ok}  # fmt: skip


def run_batch(url: str, tasks: int, batch: int) -> dict:
    ledger, op, reports, batches, opened = prepare(url, tasks, batch)
    messages = [
        op.sign(
            SettleTasks(round=1, settlements=tuple(TaskReports(t, (reports[t],)) for t in chunk))
        ).to_json()
        for chunk in batches
    ]
    verifying = parsing = 0.0
    start = time.perf_counter()
    for text in messages:
        message = SignedMessage.from_json(text)
        receipt = ledger.submit(message)
        assert receipt.applied and receipt.result["settled"] == len(receipt.result["tasks"])
    seconds = time.perf_counter() - start
    # where the time goes: the signature checks alone, as the ledger runs them
    for chunk in batches:
        begin = time.perf_counter()
        for t in chunk:
            reports[t].verify()
        verifying += time.perf_counter() - begin
    for text in messages:
        begin = time.perf_counter()
        parse(SignedMessage.from_json(text))
        parsing += time.perf_counter() - begin
    ok = ledger.verify(signatures=False).ok
    ledger.close()
    return {
        "tasks": tasks, "batch": batch, "seconds": round(seconds, 3),
        "per_second": round(tasks / seconds, 1), "open_seconds": round(opened, 3),
        "open_per_second": round(tasks / opened, 1),
        "parse_seconds": round(parsing, 3),
        "signature_checks_seconds": round(verifying, 3), "verified": ok,
    }  # fmt: skip


def measure(store: str, url_factory, args) -> dict:  # type: ignore[no-untyped-def]
    return {
        "single": run_single(url_factory(), args.single),
        "batch": run_batch(url_factory(), args.tasks, args.batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks settled in batches")
    parser.add_argument("--single", type=int, default=300, help="tasks settled one by one")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    results: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))
        results["sqlite"] = measure("sqlite", lambda: f"sqlite:///{tmp}/b{next(counter)}.db", args)
    try:
        with TemporaryPostgres(durable=True) as server:
            counter = iter(range(10**6))
            results["postgresql"] = measure(
                "postgresql", lambda: server.create_database(f"bench{next(counter)}"), args
            )
    except PostgresUnavailable as exc:
        unavailable["postgresql"] = str(exc)

    side_by_side = {
        store: {
            "single_per_second": r["single"]["per_second"],
            "batch_per_second": r["batch"]["per_second"],
            "speed_up": round(r["batch"]["per_second"] / r["single"]["per_second"], 1),
        }
        for store, r in results.items()
    }
    print(json.dumps({
        "benchmark": "ledger settlements per second, signatures checked (durable stores)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "assets_per_task": ASSETS_PER_TASK,
        "mercat": os.path.dirname(mercat.__file__),
        "side_by_side": side_by_side,
        "results": results,
        "unavailable": unavailable,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
