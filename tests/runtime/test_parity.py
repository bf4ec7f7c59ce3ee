"""Same seed, same result: the round pipeline on the in-memory book and on the SQL ledger
(SQLite) leaves identical balances and stakes, round after round."""

from __future__ import annotations

import numpy as np
import pytest

from mercat.clearing import registry
from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import Ledger, LedgerConfig
from mercat.ledger.book import LedgerBook
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from tests.runtime.scenario import UNIT, populate

RULE = IntegerRule(penalty=990, reward=10, removal=True)


def _memory_book(tmp_path):
    return MemoryBook(RULE, unit=UNIT)


def _ledger_book(tmp_path):
    operator, oracle = Keypair.generate(), Keypair.generate()
    config = LedgerConfig(operator=operator.public, rule=RULE, unit=UNIT)
    ledger = Ledger.init(f"sqlite:///{tmp_path}/ledger.db", config, durable=False)
    book = LedgerBook(ledger, operator)
    book.add_oracles([oracle])
    return book


OPTIONS = {"posted-price": {"tick": 0.25}}  # a coarse tick: the dynamics converge quickly


def _run(book, mechanism: str, rounds: int = 4) -> list[dict[str, int]]:
    rng = np.random.default_rng(11)
    world = populate(book, rng)
    plan = RoundPlan(
        registry.create(mechanism, **OPTIONS.get(mechanism, {})),
        SampledExecution(world["failure"], sla_violations=world["late"]),
    )
    history = []
    for round_ in range(1, rounds + 1):
        run_round(book, round_, plan, rng)
        books = book.books(named=True) if isinstance(book, LedgerBook) else book.books()
        history.append({b: v for b, v in books.items() if v})
    return history


@pytest.mark.parametrize("mechanism", ["optimal", "collective", "posted-price"])
def test_memory_book_and_sql_ledger_agree_round_by_round(tmp_path, mechanism):
    memory = _run(_memory_book(tmp_path), mechanism)
    ledger_book = _ledger_book(tmp_path)
    sql = _run(ledger_book, mechanism)
    assert memory == sql
    assert any(b.startswith("stake:") and v != 3 * UNIT for b, v in memory[-1].items()), (
        "the rounds should move stakes"
    )
    ledger_book.verify()
