"""Conservation and non-negativity over random operation sequences (hypothesis), on SQLite
and on PostgreSQL.

Each example runs a random sequence of deposits, withdrawals, transfers, pool funding,
stakes, unstakes, releases, offers, requests, refunds, task openings and settlements by a
few fresh users on one ledger (shared by the examples of a test: the invariants are global,
and a fresh store per example would spend the time budget on migrations). Many operations
are refused (overdrafts, stakes below the minimum, busy assets...). After every operation:
- a refused operation changed nothing;
- after an accepted one the books still sum to zero and none but `world` is negative;
- the supply equals deposits minus withdrawals as the test counted them;
and at the end `verify()` recomputes every balance from the journal.
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercat.errors import LedgerError, ProtocolError
from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AdvanceRound,
    Deposit,
    FundPool,
    Offer,
    OpenTasks,
    PostOffer,
    PostRequest,
    Refund,
    Release,
    ReplaceAsset,
    RequestTerms,
    Settle,
    Stake,
    TaskTerms,
    Transfer,
    Unstake,
    Withdraw,
)
from mercat.ledger.messages import OpenAccount
from tests.ledger.market import Market

KINDS = ["deposit", "withdraw", "transfer", "fund_pool", "add_asset", "stake", "unstake",
         "release", "advance", "offer", "post_request", "refund", "open_task", "settle",
         "replace"]  # fmt: skip

operations = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 2),  # actor
        st.integers(0, 2),  # counterpart / object index
        st.integers(1, 1_500),  # amount
        st.booleans(),  # task outcome
    ),
    min_size=5,
    max_size=30,
)

_counter = itertools.count()


class Run:
    """One example: three fresh users on the shared market, and what they created."""

    def __init__(self, market: Market) -> None:
        self.m = market
        self.tag = f"x{next(_counter)}"
        self.users = [Keypair.generate() for _ in range(3)]
        for user in self.users:
            market.submit(user, OpenAccount())
        self.assets: list[str] = []
        self.requests: list[str] = []
        self.tasks: list[tuple[int, str]] = []
        self.round = market.ledger.round()

    def message(self, kind: str, actor: int, other: int, amount: int, success: bool):  # type: ignore[no-untyped-def]
        m, user = self.m, self.users[actor]
        pick = lambda items: items[other % len(items)] if items else "none"  # noqa: E731
        n = next(_counter)
        if kind == "deposit":
            return m.operator, Deposit(account=user.public, amount=amount), amount
        if kind == "withdraw":
            return user, Withdraw(amount=amount), -amount
        if kind == "transfer":
            return user, Transfer(to=self.users[other].public, amount=amount), 0
        if kind == "fund_pool":
            return user, FundPool(amount=amount), 0
        if kind == "add_asset":
            self.assets.append(f"{self.tag}a{n}")
            return user, AddAsset(asset=self.assets[-1], stake=amount), 0
        if kind == "stake":
            return user, Stake(asset=pick(self.assets), amount=amount), 0
        if kind == "unstake":
            return user, Unstake(asset=pick(self.assets), amount=amount), 0
        if kind == "release":
            return user, Release(), 0
        if kind == "advance":
            self.round += 1
            return m.operator, AdvanceRound(round=self.round), 0
        if kind == "offer":
            return user, PostOffer(offer=Offer(pick(self.assets))), 0
        if kind == "post_request":
            self.requests.append(f"{self.tag}r{n}")
            terms = RequestTerms(self.requests[-1], max_price=amount, replicas=1 + other % 2)
            return user, PostRequest(terms=terms), 0
        if kind == "refund":
            return user, Refund(request=pick(self.requests)), 0
        if kind == "open_task":
            pool = self.assets or ["none"]
            chosen = tuple(dict.fromkeys(pool[i % len(pool)] for i in (other, other + 1)))
            self.tasks.append((self.round, f"{self.tag}t{n}"))
            terms = TaskTerms(self.tasks[-1][1], pick(self.requests), chosen,
                              tuple(amount // 4 for _ in chosen), amount // 2)  # fmt: skip
            return m.operator, OpenTasks(round=self.round, tasks=(terms,)), 0
        if kind == "settle":
            round_, task = pick(self.tasks) if self.tasks else (0, "none")
            return m.operator, Settle(round=round_, task=task,
                                      reports=(m.report(round_, task, success),)), 0  # fmt: skip
        if kind == "replace":
            self.assets.append(f"{self.tag}a{n}")
            return user, ReplaceAsset(old=pick(self.assets[:-1] or ["none"]),
                                      new=self.assets[-1], stake=amount), 0  # fmt: skip
        raise AssertionError(kind)


def _check_invariants(market: Market, supply: int) -> None:
    books = market.ledger.books()
    assert sum(books.values()) == 0
    assert all(balance >= 0 for name, balance in books.items() if name != "world")
    assert -books["world"] == supply


def _property(market: Market, ops) -> None:  # type: ignore[no-untyped-def]
    run = Run(market)
    supply = market.ledger.supply()
    for kind, actor, other, amount, success in ops:
        key, op, supply_change = run.message(kind, actor, other, amount, success)
        before = market.snapshot()
        try:
            receipt = market.submit(key, op)
        except (LedgerError, ProtocolError):
            assert market.snapshot() == before, f"refused {kind} changed the store"
            continue
        if receipt.applied:
            supply += supply_change
        _check_invariants(market, supply)


@pytest.fixture(scope="module")
def sqlite_market(tmp_path_factory):
    m = Market(f"sqlite:///{tmp_path_factory.mktemp('prop')}/ledger.db", users=0, unstake_delay=1)
    m.fund_pool(10**6)
    yield m
    m.ledger.verify()
    m.ledger.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_conservation_and_non_negativity_on_sqlite(sqlite_market, ops):
    _property(sqlite_market, ops)


@pytest.fixture(scope="module")
def pg_market(postgres):
    m = Market(postgres.create_database(f"prop_{uuid.uuid4().hex[:12]}"), users=0, unstake_delay=1)
    m.fund_pool(10**6)
    yield m
    m.ledger.verify()
    m.ledger.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_conservation_and_non_negativity_on_postgresql(pg_market, ops):
    _property(pg_market, ops)


def test_the_sequences_reach_past_the_checks(sqlite_url):
    """Guard against a property that only ever exercises refusals: a fixed busy sequence
    applies every kind of operation at least once."""
    market = Market(sqlite_url, users=0, unstake_delay=0)
    market.fund_pool(10**6)
    run = Run(market)
    script = [("deposit", 0, 0, 5000, True), ("deposit", 1, 0, 5000, True),
              ("add_asset", 0, 0, 990, True), ("add_asset", 0, 0, 150, True),
              ("offer", 0, 0, 0, True), ("offer", 0, 1, 0, True),
              ("stake", 0, 0, 10, True), ("post_request", 1, 1, 800, True),
              ("post_request", 1, 0, 50, True),
              ("open_task", 0, 0, 400, True), ("settle", 0, 0, 0, False),
              ("replace", 0, 1, 990, True), ("unstake", 0, 0, 100, True),
              ("advance", 0, 0, 1, True),
              ("release", 0, 0, 1, True), ("refund", 1, 1, 1, True),
              ("transfer", 0, 1, 7, True), ("fund_pool", 1, 0, 3, True),
              ("withdraw", 1, 0, 2, True)]  # fmt: skip
    applied = set()
    for kind, actor, other, amount, success in script:
        key, op, _ = run.message(kind, actor, other, amount, success)
        assert market.submit(key, op).applied, kind
        applied.add(kind)
    assert applied == set(KINDS)
    market.ledger.verify()
