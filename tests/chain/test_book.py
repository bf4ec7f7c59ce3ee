"""`ChainBook` beyond the parity tests: a round larger than one transaction, the off-chain
registry held to the chain's digests, names it does not know."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mercat.chain.book import ChainBook, _open_chunks, nonzero
from mercat.chain.market import MAX_BATCH, MAX_CALL_SERVERS
from mercat.errors import (
    LedgerIntegrityError,
    UnknownAccountError,
    UnknownRequestError,
    UnknownTaskError,
)
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.attest import Attestation
from mercat.runtime.memory import MemoryBook
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

RULE = IntegerRule(penalty=99, reward=1, removal=True)


def _task(i: int, servers: int = 1) -> TaskTerms:
    assets = tuple(f"a{i}-{j}" for j in range(servers))
    return TaskTerms(f"t{i}", f"r{i}", assets, (0,) * servers, 0)


def test_open_chunks_respect_both_bounds_and_keep_the_order():
    tasks = [_task(i) for i in range(2 * MAX_BATCH + 5)]
    chunks = _open_chunks(tasks)
    assert [len(c) for c in chunks] == [MAX_BATCH, MAX_BATCH, 5]
    assert [t for c in chunks for t in c] == tasks
    wide = [_task(i, servers=16) for i in range(20)]
    chunks = _open_chunks(wide)
    assert all(len({a for t in c for a in t.assets}) <= MAX_CALL_SERVERS for c in chunks)
    assert [t for c in chunks for t in c] == wide
    assert _open_chunks([]) == [[]]  # refused by the contract, as by the other books


def _two_books():
    books = (MemoryBook(RULE, unit=100), ChainBook(RULE, unit=100))
    for book in books:
        for name in ("alice", "carol"):
            book.open_account(name)
            book.deposit(name, 10**6)
        book.deposit("operator", 10**5)
        book.fund_pool("operator", 10**4)
        for i in range(4):
            book.add_asset("alice", f"s{i}", 500, Offer(f"s{i}", capacity={"gpu": 20}, cost=3))
    return books


def test_a_round_larger_than_one_transaction_settles_like_the_memory_book():
    books = _two_books()
    n = MAX_BATCH + 8
    tasks = [TaskTerms(f"t{i}", f"r{i}", (f"s{i % 4}",), (5,), 6) for i in range(n)]
    verdicts = [Attestation(t.task, i % 3 != 0, i % 5 != 0, 1) for i, t in enumerate(tasks)]
    results = []
    for book in books:
        for i in range(n):
            book.post_request("carol", RequestTerms(f"r{i}", max_price=9, demand={"gpu": 1}))
        book.open_tasks(1, tasks)
        results.append(book.settle(1, verdicts))
    assert results[0] == results[1]
    assert nonzero(books[0].books()) == nonzero(books[1].books())
    books[1].verify()


def test_the_registry_is_held_to_the_chain():
    _, chain = _two_books()
    chain.post_request("carol", RequestTerms("r", max_price=9, demand={"gpu": 1}))
    chain.state(1)  # digests agree
    chain.offers["s0"] = replace(chain.offers["s0"], cost=1)  # a registry that drifted
    with pytest.raises(LedgerIntegrityError, match="another offer"):
        chain.state(1)


def test_unknown_names_are_refused_before_anything_is_sent():
    _, chain = _two_books()
    before = nonzero(chain.books())
    with pytest.raises(UnknownAccountError):
        chain.deposit("mallory", 5)
    with pytest.raises(UnknownTaskError):
        chain.settle(1, [Attestation("nope", True, True, 1)])
    assert nonzero(chain.books()) == before


def test_tasks_a_refused_later_chunk_leaves_open_can_still_be_settled():
    _, chain = _two_books()
    for i in range(MAX_BATCH):
        chain.post_request("carol", RequestTerms(f"r{i}", max_price=9, demand={"gpu": 1}))
    # The last task names a request nobody posted: its chunk (the second) is refused, the
    # first chunk's tasks are open on chain with their charges held.
    tasks = [TaskTerms(f"t{i}", f"r{i}", (f"s{i % 4}",), (5,), 6) for i in range(MAX_BATCH + 1)]
    with pytest.raises(UnknownRequestError):
        chain.open_tasks(1, tasks)
    assert chain.market.task(1, "t0").status == "open"
    assert chain.market.task(1, f"t{MAX_BATCH}").status == "unknown"
    settled = chain.settle(1, [Attestation(t.task, True, True, 1) for t in tasks[:MAX_BATCH]])
    assert [s.task for s in settled] == [t.task for t in tasks[:MAX_BATCH]]
    assert chain.market.open_task_holds() == 0
    chain.verify()
