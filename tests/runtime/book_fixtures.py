"""Small books for the runtime tests: a funded operator and pool, owners, requesters."""

from __future__ import annotations

from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.memory import MemoryBook
from mercat.runtime.terms import Offer

UNIT = 1000
RULE = IntegerRule(penalty=990, reward=10, removal=True)  # P = 0.99, R = 0.01 tokens


def funded_book(rule: IntegerRule = RULE, *, pool: int = 100 * UNIT, **kw) -> MemoryBook:
    book = MemoryBook(rule, unit=UNIT, **kw)
    book.deposit("operator", 1_000 * UNIT)
    book.fund_pool("operator", pool)
    for name in ("alice", "bob", "carol", "dave"):
        book.open_account(name)
        book.deposit(name, 1_000 * UNIT)
    return book


def two_servers(book: MemoryBook, *, cost: int = UNIT, gpu: int = 4, stake: int = 5 * UNIT) -> None:
    book.add_asset("alice", "n1", stake, Offer("n1", capacity={"gpu": gpu}, cost=cost,
                                              capabilities=["cuda"]))  # fmt: skip
    book.add_asset("bob", "n2", stake, Offer("n2", capacity={"gpu": gpu}, cost=cost))
