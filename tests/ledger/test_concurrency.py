"""Many writers at once: threads sharing one Ledger, and forked processes with their own.

Every writer gets the same work, each message signed with its own nonce: transfers around
a ring of users, a settlement of every open task (so writers race to settle the same
tasks), and one withdrawal of the whole balance of a single account (so writers race to
spend the same tokens). Afterwards:
- every transfer applied, and every balance is exactly what the applied transfers imply
  (no lost update);
- exactly one writer's withdrawal went through, all others were refused for lack of funds
  (no double spend);
- each task was settled exactly once, whoever got there first;
- the journal verifies (balanced, conserved, explains every balance).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

import pytest

from mercat.errors import InsufficientFundsError
from mercat.ledger import Ledger, Settle, SignedMessage, Transfer, Withdraw
from tests.ledger.market import Market

USERS, TASKS, TRANSFERS = 4, 6, 8
SPEND = 5_000


def _setup(url: str, writers: int):  # type: ignore[no-untyped-def]
    m = Market(url, users=USERS + 1)
    ring, spender = m.users[:USERS], m.users[USERS]
    for user in ring:
        m.fund(user, 10_000)
    m.fund(spender, SPEND)
    m.fund_pool(10_000)
    assets = [m.asset(ring[0], 990) for _ in range(2)]
    request = m.request(ring[1], 5_000)
    tasks = [m.task(request, assets, [10, 5]) for _ in range(TASKS)]
    work: list[list[str]] = []
    for w in range(writers):
        messages = []
        for i in range(TRANSFERS):
            sender = ring[(w + i) % USERS]
            to = ring[(w + i + 1) % USERS]
            messages.append(m.signer(sender).sign(Transfer(to=to.public, amount=1 + w + i)))
        for task in tasks:
            report = m.report(1, task, success=True)
            messages.append(
                m.signer(m.operator).sign(Settle(round=1, task=task, reports=(report,)))
            )
        messages.append(m.signer(spender).sign(Withdraw(amount=SPEND)))
        work.append([message.to_json() for message in messages])
    before = {user.public: m.ledger.available(user.public) for user in ring}
    return m, ring, spender, work, before


def _submit_all(ledger: Ledger, messages: list[str]) -> Counter:
    outcome: Counter = Counter()
    for text in messages:
        message = SignedMessage.from_json(text)
        op = message.payload.split(b'"op":"')[1].split(b'"')[0].decode()
        try:
            receipt = ledger.submit(message)
            outcome[f"{op}:{'applied' if receipt.applied else 'already'}"] += 1
        except InsufficientFundsError:
            outcome[f"{op}:refused"] += 1
    return outcome


def _child(url: str, messages: list[str], results) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(url, durable=False)
    results.put(dict(_submit_all(ledger, messages)))
    ledger.close()


def _check(m: Market, ring, spender, work, before, outcomes: list[Counter]) -> None:  # type: ignore[no-untyped-def]
    total: Counter = Counter()
    for outcome in outcomes:
        total.update(outcome)
    writers = len(work)
    assert total["transfer:applied"] == writers * TRANSFERS
    assert total["settle:applied"] == TASKS
    assert total["settle:already"] == TASKS * (writers - 1)
    assert (total["withdraw:applied"], total["withdraw:refused"]) == (1, writers - 1)
    expected = dict(before)
    for w in range(writers):
        for i in range(TRANSFERS):
            amount = 1 + w + i
            expected[ring[(w + i) % USERS].public] -= amount
            expected[ring[(w + i + 1) % USERS].public] += amount
    expected[ring[0].public] += TASKS * 15  # both assets are ring[0]'s: 10 + 5 per task
    for user in ring:
        assert m.ledger.available(user.public) == expected[user.public]
    assert m.ledger.available(spender.public) == 0
    report = m.ledger.verify()
    assert report.settled_tasks == TASKS


def _threads(url: str) -> None:
    writers = 4
    m, ring, spender, work, before = _setup(url, writers)
    outcomes: list[Counter] = [Counter() for _ in range(writers)]
    barrier = threading.Barrier(writers)

    def run(i: int) -> None:
        barrier.wait()
        outcomes[i] = _submit_all(m.ledger, work[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check(m, ring, spender, work, before, outcomes)
    m.ledger.close()


def _processes(url: str) -> None:
    writers = 3
    m, ring, spender, work, before = _setup(url, writers)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [
        context.Process(target=_child, args=(url, work[i], results)) for i in range(writers)
    ]
    for child in children:
        child.start()
    outcomes = [Counter(results.get(timeout=120)) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    _check(m, ring, spender, work, before, outcomes)
    m.ledger.close()


@pytest.mark.slow
def test_threads_race_without_lost_updates_or_double_spends(store_url):
    _threads(store_url)


@pytest.mark.slow
def test_processes_race_without_lost_updates_or_double_spends(store_url):
    _processes(store_url)
