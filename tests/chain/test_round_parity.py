"""Parity of the three books: the same rounds of the round pipeline (`run_round`, a fixed seed,
a mechanism, sampled execution with failures and SLA violations, new requests every round,
expiries, removals) through the in-memory book, the SQL ledger (a minimal adapter,
tests/chain/ledger_book.py) and the contracts (`ChainBook` on boa) give the same tasks,
the same settlements and, after every round, the same balance in every book: free
balances, escrows, holds, stakes, the pool and the margin holder's account.

Each book draws from its own generator seeded alike, so the rounds draw the same numbers
only if every book shows the round the same market (same assets, stakes, offers and open
requests in the same order): one book that drifts changes every later round.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mercat.chain.book import ChainBook, nonzero
from mercat.clearing import registry
from mercat.errors import QuorumNotReachedError
from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.accounts import avail
from mercat.runtime.attest import OracleQuorum
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, RoundReport, run_round
from mercat.runtime.terms import Offer, RequestTerms
from tests.chain.ledger_book import LedgerBook

UNIT = 1000
RULE = IntegerRule(penalty=990, reward=10, removal=True)  # P = 0.99, R = 0.01 tokens
OWNERS, REQUESTERS = ("alice", "bob"), ("carol", "dave")


def _fund(book) -> None:
    book.deposit("operator", 1_000 * UNIT)
    book.fund_pool("operator", 100 * UNIT)
    for name in OWNERS + REQUESTERS:
        book.open_account(name)
        book.deposit(name, 1_000 * UNIT)


def _general_market(book) -> None:
    """Servers with fixed and unit costs and capabilities, a named app by CID, and stakes
    two or three penalties from removal."""
    _fund(book)
    for j in range(5):
        offer = Offer(
            f"s{j}",
            capacity={"gpu": 4, "mem": 32},
            cost=150 + 40 * j,
            unit_costs={"gpu": 30 + 5 * j, "mem": 2},
            capabilities=["cuda"] if j % 2 else [],
        )
        book.add_asset(OWNERS[j % 2], f"s{j}", (2 + j % 2) * 1000 + 5, offer)
    book.add_asset("bob", "app", 3 * 1000, Offer("app", kind="app", cost=80, cid="bafkapp"))


def _general_requests(book, round_: int) -> None:
    for i in range(6):
        book.post_request(
            REQUESTERS[i % 2],
            RequestTerms(
                f"q{round_}-{i}",
                max_price=(1 + i % 4) * UNIT + 300,
                demand={"gpu": 1 + i % 3, "mem": 4 * (i % 2)},
                replicas=2 if i % 4 == 0 else 1,
                capabilities=["cuda"] if i % 5 == 1 else [],
                assets=["bafkapp"] if i % 3 == 0 else [],
                deadline_ms=40,
                expires=round_ + 1,
            ),
        )


def _unit_market(book) -> None:
    """One resource, unit costs only: what the double auction clears."""
    _fund(book)
    for j in range(4):
        offer = Offer(f"p{j}", capacity={"gpu": 3 + j}, unit_costs={"gpu": 60 + 25 * j})
        book.add_asset(OWNERS[j % 2], f"p{j}", 2 * 1000 + 5, offer)


def _unit_requests(book, round_: int) -> None:
    for i in range(5):
        book.post_request(
            REQUESTERS[i % 2],
            RequestTerms(
                f"u{round_}-{i}",
                max_price=(2 + i) * 150 + 7 * round_,
                demand={"gpu": 1 + i % 3},
                deadline_ms=40,
                expires=round_,
            ),
        )


def _free_market(book) -> None:
    """One resource, providers without costs or capabilities: what VCG clears."""
    _fund(book)
    for j in range(3):
        book.add_asset(OWNERS[j % 2], f"v{j}", 2 * 1000 + 5, Offer(f"v{j}", capacity={"bw": 4}))


def _free_requests(book, round_: int) -> None:
    for i in range(5):
        book.post_request(
            REQUESTERS[i % 2],
            RequestTerms(
                f"v{round_}-{i}",
                max_price=(1 + i) * 200 + 11 * round_,
                demand={"bw": 1 + i % 4},
                deadline_ms=40,
                expires=round_,
            ),
        )


CASES: dict[str, tuple[Callable, Callable]] = {
    "optimal": (_general_market, _general_requests),
    "collective": (_general_market, _general_requests),
    "double-auction": (_unit_market, _unit_requests),
    "vcg": (_free_market, _free_requests),
}


def _plan(mechanism: str) -> RoundPlan:
    assets = ["s0", "s1", "s2", "s3", "s4", "app", "p0", "p1", "p2", "p3", "v0", "v1", "v2"]
    failures = {a: 0.25 for a in assets}
    late = {a: 0.15 for a in assets}
    return RoundPlan(registry.create(mechanism), SampledExecution(failures, sla_violations=late))


def _assert_same_round(reports: dict[str, RoundReport]) -> None:
    reference = reports["memory"]
    for name, report in reports.items():
        assert report.tasks == reference.tasks, name
        assert report.settlements == reference.settlements, name
        assert report.expired == reference.expired, name


def _assert_same_books(books: dict) -> dict[str, int]:
    balances = {name: nonzero(book.books()) for name, book in books.items()}
    for name, values in balances.items():
        assert values == balances["memory"], name
    for book in books.values():
        book.verify()
    return balances["memory"]


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", sorted(CASES))
def test_three_books_run_the_same_rounds(mechanism, tmp_path):
    market, requests = CASES[mechanism]
    books = {
        "memory": MemoryBook(RULE, unit=UNIT),
        "ledger": LedgerBook(f"sqlite:///{tmp_path / 'ledger.db'}", RULE, unit=UNIT),
        "chain": ChainBook(RULE, unit=UNIT),
    }
    rngs = {name: np.random.default_rng(2026) for name in books}
    for book in books.values():
        market(book)
    _assert_same_books(books)
    seen = {"tasks": 0, "paid": 0, "failed": 0, "removed": 0, "expired": 0, "late": 0}
    for round_ in range(1, 5):
        reports = {}
        for name, book in books.items():
            requests(book, round_)
            reports[name] = run_round(book, round_, _plan(mechanism), rngs[name])
        _assert_same_round(reports)
        balances = _assert_same_books(books)
        report = reports["memory"]
        seen["tasks"] += len(report.tasks)
        seen["paid"] += report.paid
        seen["failed"] += report.failed
        seen["removed"] += len(report.removed)
        seen["expired"] += len(report.expired)
        seen["late"] += sum(1 for o in report.outcomes if o.success and o.latency_ms > 40)
    # The rounds did what the test is about: paid and failed tasks, late ones among the
    # failures, assets removed by the collective rule.
    assert seen["paid"] and seen["failed"] and seen["late"], seen
    assert seen["removed"], seen
    if mechanism in ("double-auction", "vcg"):  # the auctions' margins go to the pool
        assert balances.get(avail("operator"), 0) == 1_000 * UNIT - 100 * UNIT
    if mechanism == "optimal":  # requests the optimum leaves out wait, then expire
        assert seen["expired"], seen


def _quorum_books(keys, quorum):
    publics = [k.public for k in keys]
    return {
        "memory": MemoryBook(RULE, unit=UNIT, oracles=publics, quorum=quorum),
        "chain": ChainBook(RULE, unit=UNIT, oracles=publics, quorum=quorum),
    }


@pytest.mark.slow
def test_an_oracle_quorum_settles_alike_on_chain_and_in_memory():
    """Five oracles, three needed: one lies about success, one stays silent; the honest
    three carry every verdict, in memory (tally) and on chain (the quorum contract)."""
    keys = [Keypair.generate() for _ in range(5)]
    attestor = OracleQuorum(keys, {keys[1].public: "liar", keys[3].public: "silent"})
    books = _quorum_books(keys, 3)
    rngs = {name: np.random.default_rng(7) for name in books}
    for book in books.values():
        _general_market(book)
    for round_ in (1, 2):
        reports = {}
        for name, book in books.items():
            _general_requests(book, round_)
            plan = _plan("optimal")
            plan.attestor = attestor
            reports[name] = run_round(book, round_, plan, rngs[name])
        _assert_same_round(reports)
        _assert_same_books(books)
    assert any(not s.paid for s in reports["memory"].settlements)


def test_without_a_quorum_neither_book_settles():
    """Three of five needed, but two liars and a silent oracle leave the honest two short:
    both books refuse the batch and change nothing."""
    keys = [Keypair.generate() for _ in range(5)]
    behaviours = {keys[0].public: "liar", keys[1].public: "liar", keys[2].public: "silent"}
    attestor = OracleQuorum(keys, behaviours)
    books = _quorum_books(keys, 3)
    for book in books.values():
        _general_market(book)
        _general_requests(book, 1)
    plan = _plan("optimal")
    plan.executor = SampledExecution()  # every task succeeds: the liars report failure
    plan.attestor = attestor
    before = {name: nonzero(book.books()) for name, book in books.items()}
    for book in books.values():
        with pytest.raises(QuorumNotReachedError):
            run_round(book, 1, plan, np.random.default_rng(3))
    after = {name: nonzero(book.books()) for name, book in books.items()}
    assert after["chain"] == after["memory"]
    # The tasks opened (their charges sit in holds); no settlement moved a token: stakes,
    # the pool and the owners' balances are as they were.
    holds = [book for book in after["chain"] if book.startswith("hold:1:")]
    assert holds
    for name in books:
        unsettled = {k: v for k, v in after[name].items() if k.startswith(("stake:", "pool"))}
        assert unsettled == {k: v for k, v in before[name].items() if k in unsettled}
        for owner in OWNERS:
            assert after[name][avail(owner)] == before[name][avail(owner)]
