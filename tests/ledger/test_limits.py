"""The ranges every book stays in (`mercat.runtime.limits`), on the SQL ledger (SQLite and
PostgreSQL) and the in-memory book alike: balances are exact integers below 2^62, an
active asset's stake lies within the contracts' bounds, a transfer to oneself needs the
funds and changes nothing; and `verify` reports, never crashes on, values a tampered store
holds."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from mercat import errors as e
from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    Deposit,
    IntegerRule,
    Ledger,
    LedgerConfig,
    ReplaceAsset,
    Stake,
    Transfer,
    Unstake,
)
from mercat.ledger.config import MAX_QUORUM, MAX_UNIT, MAX_UNSTAKE_DELAY
from mercat.runtime.limits import MAX_BALANCE, check_postings, stake_bounds
from mercat.runtime.memory import MemoryBook
from tests.ledger.market import Market

TOP = 2**62 - 1  # the largest amount a message carries, and the largest balance a book holds

# Coll-SR-like: removal at S <= P, clamp to [floor, cap]; the floor above P + 1, so it is
# the floor, not the removal level, that sets the least stake.
CLAMPED = IntegerRule(penalty=99, reward=10, removal=True, stake_floor=500, stake_cap=2_000)


# --- balances ----------------------------------------------------------------------------


def test_the_supply_stays_below_2_62_and_a_refused_deposit_changes_nothing(store_url):
    m = Market(store_url, users=2)
    alice, bob = m.users
    m.fund(alice, TOP)  # the largest supply there can be
    before = m.snapshot()
    for key in (alice, bob, m.operator):
        with pytest.raises(e.BalanceOverflowError, match="below 2\\^62"):
            m.fund(key, 1)
        assert m.snapshot() == before
    assert m.ledger.supply() == TOP == m.ledger.available(alice.public)
    m.submit(alice, Transfer(to=bob.public, amount=TOP))  # every token still moves
    report = m.ledger.verify()
    assert report.ok and report.supply == TOP
    m.ledger.close()


def test_three_deposits_of_the_largest_amount_leave_exact_integers(sqlite_url):
    # What used to happen: the third deposit took `world` past -2^63, SQLite stored it as a
    # float, tokens appeared, and `verify` died on SQLite's SUM overflow.
    m = Market(sqlite_url, users=1)
    m.fund(m.users[0], TOP)
    for _ in range(2):
        with pytest.raises(e.BalanceOverflowError):
            m.fund(m.users[0], TOP)
    with m.ledger.engine.connect() as c:
        kinds = set(c.execute(text("SELECT DISTINCT typeof(balance) FROM books")).scalars())
    assert kinds == {"integer"}
    assert m.ledger.verify().ok
    m.ledger.close()


def test_the_memory_book_keeps_the_same_range():
    book = MemoryBook(IntegerRule(penalty=99, reward=1, removal=True))
    book.open_account("alice")
    book.deposit("alice", TOP)
    with pytest.raises(e.BalanceOverflowError):
        book.deposit("operator", 1)
    for amount in (1.5, -1, 2**62, True):
        with pytest.raises(e.InvalidParameterError):
            book.deposit("alice", amount)  # type: ignore[arg-type]
    assert book.supply() == TOP
    book.verify()
    book.balances["pool"] = 1.5  # type: ignore[assignment]
    book.balances["world"] -= 1
    with pytest.raises(e.LedgerIntegrityError, match="not integers"):
        book.verify()


def test_every_posting_is_checked_against_the_range():
    balances = {"world": -10, "avail:a": 10, "avail:b": MAX_BALANCE - 10}
    check_postings(balances.__getitem__, {"avail:a": -10, "avail:b": 10})  # up to the top
    with pytest.raises(e.BalanceOverflowError, match="avail:b would hold"):
        check_postings(balances.__getitem__, {"avail:a": -10, "avail:b": 11, "world": -1})
    with pytest.raises(e.InsufficientFundsError):
        check_postings(balances.__getitem__, {"avail:a": -11, "world": 11})
    with pytest.raises(e.BalanceOverflowError, match="supply would reach"):
        check_postings(balances.__getitem__, {"world": -MAX_BALANCE, "avail:a": MAX_BALANCE})
    with pytest.raises(e.LedgerIntegrityError, match="world would hold 1"):
        check_postings(balances.__getitem__, {"world": 11, "avail:a": -10, "avail:b": -1})
    with pytest.raises(e.LedgerIntegrityError, match="unbalanced"):
        check_postings(balances.__getitem__, {"avail:a": -1})


# --- verify on a tampered store ------------------------------------------------------------


def _tamper(url: str, statement: str) -> None:
    """Change a SQLite store behind the ledger's back, its CHECK constraints and append-only
    triggers out of the way first (the way a tamperer would)."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA ignore_check_constraints = ON")
        triggers = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            connection.execute(f'DROP TRIGGER "{name}"')
        connection.execute(statement)
    connection.close()


def _funded(url: str) -> str:
    m = Market(url, users=1)
    m.fund(m.users[0], 100)
    m.ledger.close()
    return url


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        ("UPDATE books SET balance = 1.5e19 WHERE name LIKE 'avail:%' AND balance = 100",
         "holds 1.5e+19, not an integer in [0, 4611686018427387903]"),
        ("UPDATE books SET balance = 'a lot' WHERE name = 'pool'", "holds 'a lot'"),
        ("UPDATE books SET balance = 4611686018427387904 WHERE name = 'pool'",
         "holds 4611686018427387904, not an integer"),
        ("UPDATE books SET balance = -5 WHERE name = 'pool'", "holds -5, not an integer"),
        # Postings beyond 64 bits in sum (each in range): SQLite's SUM would raise.
        ("INSERT INTO postings (entry_id, book, amount) SELECT 1, 'pool', 4611686018427387903 "
         "FROM books, books AS b2", "book 'pool' holds 0, its postings sum to"),
        ("INSERT INTO postings (entry_id, book, amount) VALUES (1, 'pool', 'x')",
         "posting to 'pool' of 'x'"),
        ("UPDATE entries SET signature = 5 WHERE id = 1", "entry 1:"),
        ("UPDATE entries SET payload = 7 WHERE id = 1", "entry 1: payload is not a JSON object"),
    ],
)  # fmt: skip
def test_verify_reports_values_a_tampered_store_holds(sqlite_url, statement, finding):
    _tamper(_funded(sqlite_url), statement)
    with Ledger(sqlite_url) as ledger, pytest.raises(e.LedgerIntegrityError) as info:
        ledger.verify()
    assert finding in str(info.value)


def test_a_task_with_a_tampered_payout_is_reported(sqlite_url):
    m = Market(sqlite_url, users=2)
    alice, bob = m.users
    m.fund(alice, 1_000)
    m.fund(bob, 1_000)
    m.task(m.request(bob, 100), [m.asset(alice, 200)], [50])
    _tamper(sqlite_url, "UPDATE task_assets SET payout = 'fifty'")
    with pytest.raises(e.LedgerIntegrityError, match="holds a value not an integer"):
        m.ledger.verify()
    for read in (m.ledger.tasks, m.ledger.settled_tasks):
        with pytest.raises(e.LedgerIntegrityError, match="holds 'fifty'"):
            read()
    m.ledger.close()


def test_reads_refuse_a_tampered_balance_in_one_line(sqlite_url):
    _tamper(_funded(sqlite_url), "UPDATE books SET balance = 2.5 WHERE name = 'pool'")
    with Ledger(sqlite_url) as ledger:
        with pytest.raises(e.LedgerIntegrityError, match=r"book 'pool' holds 2\.5"):
            ledger.books()
        with pytest.raises(e.LedgerIntegrityError, match="run `mercat ledger verify`"):
            ledger.pool()


# --- the stake rule of the contracts -------------------------------------------------------


def test_stake_bounds_follow_the_minimum_the_floor_and_the_cap():
    assert stake_bounds(CLAMPED, 100) == (500, 2_000)
    assert stake_bounds(CLAMPED, 700) == (700, 2_000)
    assert stake_bounds(IntegerRule(penalty=99, reward=1, removal=True), 100) == (100, TOP)
    config = LedgerConfig(operator=Keypair.generate().public, rule=CLAMPED)
    assert config.min_stake == 500 and config.stake_bounds == (500, 2_000)


def test_stakes_outside_the_bounds_are_refused_before_anything_is_written(store_url):
    m = Market(store_url, users=2, rule=CLAMPED)
    alice, bob = m.users
    m.fund(alice, 100_000)
    m.fund(bob, 100_000)
    m.fund_pool(1_000)
    gpu = m.asset(alice, 1_500)
    refused = [
        (AddAsset(asset="big", stake=2_001), e.StakeAboveCapError),
        (AddAsset(asset="small", stake=499), e.StakeBelowMinimumError),  # above P + 1
        (Stake(asset=gpu, amount=501), e.StakeAboveCapError),
        (Unstake(asset=gpu, amount=1_001), e.StakeBelowMinimumError),  # 499 would stay
    ]
    for op, error in refused:
        before = m.snapshot()
        with pytest.raises(error):
            m.submit(alice, op)
        assert m.snapshot() == before, op
    m.submit(alice, Stake(asset=gpu, amount=500))  # up to the cap exactly
    assert m.ledger.stake_of(gpu) == 2_000
    # At the cap, a success moves nothing: no excess to send back to the pool.
    pool = m.ledger.pool()
    task = m.task(m.request(bob, 10), [gpu], [10])
    m.settle(1, task, True)
    assert (m.ledger.stake_of(gpu), m.ledger.pool()) == (2_000, pool)
    m.ledger.close()


def test_replace_asset_refuses_a_stake_above_the_cap(store_url):
    # Removal at S <= P with a cap and no floor, so an asset can be removed and replaced.
    rule = IntegerRule(penalty=99, reward=10, removal=True, stake_cap=2_000)
    m = Market(store_url, users=2, rule=rule)
    alice, bob = m.users
    m.fund(alice, 100_000)
    m.fund(bob, 100_000)
    gpu = m.asset(alice, 150)
    m.settle(1, m.task(m.request(bob, 10), [gpu], [10]), False)  # 150 - 99 = 51: removed
    assert m.ledger.asset(gpu).status == "removed"
    before = m.snapshot()
    with pytest.raises(e.StakeAboveCapError):
        m.submit(alice, ReplaceAsset(old=gpu, new="gpu-2", stake=2_001))
    with pytest.raises(e.StakeBelowMinimumError):
        m.submit(alice, ReplaceAsset(old=gpu, new="gpu-2", stake=99))
    assert m.snapshot() == before
    m.submit(alice, ReplaceAsset(old=gpu, new="gpu-2", stake=2_000))
    assert m.ledger.stake_of("gpu-2") == 2_000
    m.ledger.close()


def test_the_memory_book_holds_the_same_stake_rule():
    book = MemoryBook(CLAMPED, unit=1, min_stake=100)
    book.open_account("alice")
    book.deposit("alice", 10_000)
    for stake, error in ((2_001, e.StakeAboveCapError), (499, e.StakeBelowMinimumError)):
        with pytest.raises(error):
            book.add_asset("alice", "gpu", stake)
        assert book.available("alice") == 10_000 and "gpu" not in book.assets
    book.add_asset("alice", "gpu", 2_000)
    with pytest.raises(e.InvalidParameterError, match="no stake fits"):
        MemoryBook(CLAMPED, min_stake=2_001)


# --- transfers to oneself -------------------------------------------------------------------


def test_a_transfer_to_oneself_needs_the_funds_and_changes_nothing(store_url):
    m = Market(store_url, users=1)
    (alice,) = m.users
    m.fund(alice, 100)
    receipt = m.submit(alice, Transfer(to=alice.public, amount=100))
    assert receipt.applied and m.ledger.available(alice.public) == 100
    assert m.ledger.journal()[-1].postings == ()
    before = m.snapshot()
    with pytest.raises(e.InsufficientFundsError):
        m.submit(alice, Transfer(to=alice.public, amount=101))
    assert m.snapshot() == before
    assert m.ledger.verify().ok
    m.ledger.close()


def test_the_memory_book_treats_a_transfer_to_oneself_alike():
    book = MemoryBook(IntegerRule(penalty=99, reward=1, removal=True))
    book.open_account("alice")
    book.deposit("alice", 100)
    book.transfer("alice", "alice", 100)
    assert book.available("alice") == 100
    with pytest.raises(e.InsufficientFundsError):
        book.transfer("alice", "alice", 101)


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"rule": IntegerRule(penalty=2**62, reward=1, removal=True)}, "penalty"),
        ({"rule": IntegerRule(penalty=9, reward=1, removal=True, stake_cap=2**70)}, "stake_cap"),
        ({"unstake_delay_rounds": MAX_UNSTAKE_DELAY + 1}, "unstake_delay_rounds"),
        ({"unstake_delay_rounds": -1}, "unstake_delay_rounds"),
        ({"quorum": MAX_QUORUM + 1}, "quorum"),
        ({"quorum": 0}, "quorum"),
        ({"unit": MAX_UNIT + 1}, "unit"),
        ({"min_stake": 2**62}, "min_stake"),
        ({"min_stake": 3_000, "rule": CLAMPED}, "no stake fits"),
        ({"unit": 1.5}, "unit"),
    ],
)
def test_a_configuration_out_of_range_is_refused(changes, words):
    settings = {"operator": Keypair.generate().public, "rule": CLAMPED} | changes
    with pytest.raises(e.InvalidParameterError, match=words):
        LedgerConfig(**settings)


def test_a_journal_page_out_of_range_is_refused(sqlite_url):
    m = Market(sqlite_url, users=1)
    for bounds in ({"limit": 10**30}, {"limit": 0}, {"after": -1}, {"after": 2**63}):
        with pytest.raises(e.InvalidParameterError):
            m.ledger.journal(**bounds)
    assert len(m.ledger.journal(limit=1)) == 1
    m.ledger.close()


def test_a_deposit_message_cannot_name_an_amount_beyond_the_range(sqlite_url):
    m = Market(sqlite_url, users=1)
    with pytest.raises(e.MalformedMessageError):
        m.op(Deposit(account=m.users[0].public, amount=2**62))
    m.ledger.close()
