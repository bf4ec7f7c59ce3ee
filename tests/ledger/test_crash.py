"""Crash safety: SIGKILL a worker at random points of a batch of settlements, restart it,
let it replay the whole batch, and compare with a run that never crashed.

The batch (open a task, settle it with an oracle report, and a transfer, for each of 12
tasks) is signed once with fixed nonces, so a replay sends byte-identical messages: the
ledger answers "already applied" (settlement idempotence, or the nonce guard) for what
committed before the kill and applies the rest. After the final, uninterrupted replay the
store must hold exactly the balances of the reference run, the journal must be balanced
and explain every balance, and every task must be settled by exactly one entry.

Kill points are database calls (statements and commits) drawn uniformly over the batch;
each trial kills the worker three times in a row before the final replay.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mercat.ledger import Ledger, OpenTasks, Settle, TaskTerms, Transfer
from mercat.ledger import schema as s
from tests.ledger import crash_worker
from tests.ledger.market import Market

TASKS = 12
KILLS_PER_TRIAL = 3


def _prepare(url: str, batch: Path) -> None:
    """A market ready for the batch, and the batch itself, signed with fixed nonces."""
    m = Market(url, users=2, durable=True)
    provider, requester = m.users
    m.fund(provider, 100_000)
    m.fund(requester, 100_000)
    m.fund_pool(10_000)
    assets = [m.asset(provider, 990, f"gpu{i}") for i in range(4)]
    requests = [m.request(requester, 60 + i, replicas=2) for i in range(TASKS)]
    operator = m.signer(m.operator)
    lines = []
    for i in range(TASKS):
        task = f"t{i}"
        chosen = (assets[i % 4], assets[(i + 1) % 4])
        terms = TaskTerms(task, requests[i], chosen, (30, 20), 50)
        lines.append(operator.sign(OpenTasks(round=i, tasks=(terms,)), nonce=10_000 + i))
        report = m.report(i, task, success=i % 3 != 0)
        lines.append(operator.sign(Settle(round=i, task=task, reports=(report,)), nonce=20_000 + i))
        transfer = Transfer(to=provider.public, amount=7 + i)
        lines.append(m.signer(requester).sign(transfer, nonce=i))
    batch.write_text("".join(message.to_json() + "\n" for message in lines))
    m.ledger.close()


def _work(url: str, batch: Path, kill_at: int) -> tuple[int, dict]:
    """Run the worker in a forked child; (exit code, its summary). -9: killed."""
    out = batch.with_suffix(".out")
    out.unlink(missing_ok=True)
    child = multiprocessing.get_context("fork").Process(
        target=crash_worker.main, args=(url, str(batch), kill_at, str(out))
    )
    child.start()
    child.join(timeout=120)
    if child.exitcode not in (0, -9):
        raise AssertionError(f"worker failed with exit code {child.exitcode}")
    return child.exitcode, (json.loads(out.read_text()) if child.exitcode == 0 else {})


def _entries(url: str) -> int:
    ledger = Ledger(url)
    try:
        return len(ledger.journal())
    finally:
        ledger.close()


def _state(url: str) -> tuple[dict, int, int]:
    ledger = Ledger(url)
    try:
        ledger.verify()
        with ledger.engine.connect() as c:
            settled = c.execute(
                select(func.count()).select_from(s.tasks).where(s.tasks.c.status == "settled")
            ).scalar_one()
            settle_entries = c.execute(
                select(func.count()).select_from(s.entries).where(s.entries.c.op == "settle")
            ).scalar_one()
        return ledger.books(), settled, settle_entries
    finally:
        ledger.close()


def _crash_trials(fresh_url, batch: Path, trials: int, seed: int) -> int:  # type: ignore[no-untyped-def]
    reference_url = fresh_url()
    rc, reference_run = _work(reference_url, batch, 0)
    assert rc == 0 and reference_run["applied"] == 3 * TASKS
    reference = _state(reference_url)
    assert reference[1:] == (TASKS, TASKS)
    rng = random.Random(seed)
    calls, messages = reference_run["calls"], 3 * TASKS
    kills = 0
    for _ in range(trials):
        url = fresh_url()
        start = _entries(url)
        for _ in range(KILLS_PER_TRIAL):
            # Draw over what is left to do: the committed messages replay in ~4 calls each.
            done = _entries(url) - start
            left = calls * (messages - done) // messages + 4 * done
            rc, _ = _work(url, batch, rng.randint(1, max(1, left)))
            kills += rc == -9
        rc, final = _work(url, batch, 0)
        assert rc == 0 and final["applied"] + final["already"] == 3 * TASKS
        assert _state(url) == reference, "a crash lost or duplicated something"
    return kills


@pytest.mark.slow
def test_sigkill_during_settlements_on_sqlite_loses_nothing(tmp_path):
    pristine = tmp_path / "pristine.db"
    batch = tmp_path / "batch.jsonl"
    _prepare(f"sqlite:///{pristine}", batch)
    copies = iter(range(1000))

    def fresh_url() -> str:
        path = tmp_path / f"run{next(copies)}.db"
        shutil.copy(pristine, path)
        return f"sqlite:///{path}"

    trials = 8
    kills = _crash_trials(fresh_url, batch, trials, seed=11)
    print(f"SQLite: {trials * KILLS_PER_TRIAL} kill points tried, {kills} landed mid-batch")
    assert kills >= 2 * trials  # most draws fall inside the batch; a late one may not


@pytest.mark.slow
def test_sigkill_during_settlements_on_postgresql_loses_nothing(postgres, tmp_path):
    import uuid

    import psycopg

    template = f"tpl_{uuid.uuid4().hex[:12]}"
    batch = tmp_path / "batch.jsonl"
    _prepare(postgres.create_database(template), batch)
    admin = postgres.url("postgres").replace("postgresql+psycopg://", "postgresql://")

    def fresh_url() -> str:
        name = f"run_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return postgres.url(name)

    trials = 4
    kills = _crash_trials(fresh_url, batch, trials, seed=12)
    print(f"PostgreSQL: {trials * KILLS_PER_TRIAL} kill points tried, {kills} landed mid-batch")
    assert kills >= 2 * trials
