"""Parity: one random scenario (mercat.chain.scenario) replayed on the Python reference (the
in-memory book and its money rule, plus the stake life cycle), on the SQL ledger (signed
messages on SQLite, through the adapter in tests/chain/ledger_book.py) and on the contracts
(`ChainBook` on boa) leaves the same balance in every book (free balances, escrows, holds,
stakes, unbonding, the pool, the margin holder) and the same asset statuses, at checkpoints
along the way and at the end; and all three refuse the same operations with the same kind
of error.

A scenario is rounds of requests, tasks from the optimal clearing of each round's market,
settlements with random outcomes and SLA verdicts, withdrawals and expiries, unstaking,
releases and replacements of removed assets; among them batches and calls that must be
refused (module docstring of mercat.chain.scenario). The SQL ledger answers a settlement of
settled tasks "already applied" and changes nothing; the adapter reports that as the
refusal the other books raise.
"""

from __future__ import annotations

import pytest

from mercat.chain.book import ChainBook, nonzero
from mercat.chain.ops import OpenTasks, SettleTasks
from mercat.chain.reference import ReferenceBook
from mercat.chain.scenario import ScenarioConfig, apply, random_scenario
from mercat.errors import MercatError
from mercat.incentives.collective import MECHANISMS
from mercat.incentives.integer_rule import IntegerRule
from tests.chain.ledger_book import LedgerBook

UNIT = 1000
S0 = 2500  # 2.5 tokens: an asset is removed by its third failure unless rewards lift it
DELAY = 2


def _rule(name: str) -> IntegerRule:
    collective = MECHANISMS[name].rule(initial_stake=S0 / UNIT, task_target=0.01, penalty=0.99)
    return IntegerRule.from_collective(collective, unit=UNIT)


def _outcome(book, op) -> str | None:
    try:
        apply(book, op)
    except MercatError as exc:
        assert op.expect in {cls.__name__ for cls in type(exc).__mro__}, (op, exc)
        return type(exc).__name__
    return None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "seed"), [("coll-stake", 2026), ("coll-sr", 7), ("coll-rep", 11), ("free", 3)]
)
def test_reference_ledger_and_contracts_agree_on_a_random_scenario(name, seed, tmp_path):
    rule = _rule(name)
    ops = random_scenario(
        rule, seed, ScenarioConfig(stake=S0, refusals=0.7), unit=UNIT, unstake_delay_rounds=DELAY
    )
    books = {
        "reference": ReferenceBook(rule, unit=UNIT, unstake_delay_rounds=DELAY),
        "ledger": LedgerBook(
            f"sqlite:///{tmp_path / 'ledger.db'}", rule, unit=UNIT, unstake_delay_rounds=DELAY
        ),
        "chain": ChainBook(rule, unit=UNIT, unstake_delay_rounds=DELAY),
    }
    checkpoints = 0
    for i, op in enumerate(ops):
        outcomes = {book_name: _outcome(book, op) for book_name, book in books.items()}
        accepted = {book_name: raised is None for book_name, raised in outcomes.items()}
        assert set(accepted.values()) == {op.expect is None}, (i, op, outcomes)
        if isinstance(op, SettleTasks) or i % 20 == 0 or i == len(ops) - 1:
            balances = {book_name: nonzero(b.books()) for book_name, b in books.items()}
            statuses = {book_name: b.statuses() for book_name, b in books.items()}
            for book_name in books:
                assert balances[book_name] == balances["reference"], (i, op, book_name)
                assert statuses[book_name] == statuses["reference"], (i, op, book_name)
            checkpoints += 1
    for book in books.values():
        book.verify()
    assert checkpoints >= 10

    # The scenario exercised what the parity is about.
    expected = {op.expect for op in ops} - {None}
    assert {
        "TermsViolationError", "InsufficientFundsError", "AlreadyExistsError",
        "UnauthorizedError", "UnknownTaskError", "UnknownRequestError", "UnknownAssetError",
        "StakeBelowMinimumError", "StakeLockedError", "MalformedMessageError",
    } <= expected  # fmt: skip
    opened = [op for op in ops if isinstance(op, OpenTasks) and op.expect is None]
    settled = [op for op in ops if isinstance(op, SettleTasks) and op.expect is None]
    assert len(opened) >= 3 and len(settled) == len(opened)
    verdicts = [v for op in settled for v in op.verdicts]
    assert any(v.success and not v.sla_met for v in verdicts)  # late: settles as a failure
    statuses = books["reference"].statuses()
    if rule.removal:
        assert {"removed", "replaced"} & set(statuses.values()), statuses
