"""A value that came from outside is quoted in an error message cut short
(`mercat.untrusted.shown`): a megabyte-long id, list or number refused by the terms types,
the chain market, the in-memory book or the ledger gives a one-line message of a few
hundred characters, not a megabyte-long one (nor, for an integer of more than 4300 digits,
a ValueError from repr)."""

from __future__ import annotations

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import ChainMarket, Settlement, integer_rule
from mercat.errors import MercatError
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import Keypair, Ledger, LedgerConfig
from mercat.ledger.messages import build
from mercat.ledger.store import store_url
from mercat.ledger.verify import stored_int
from mercat.runtime.memory import MemoryBook
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

HUGE = "x" * 1_000_000
HUGE_LIST = list(range(100_000))
HUGE_INT = 10**5000  # repr refuses it: more than 4300 digits
RULE = IntegerRule(penalty=99, reward=1, removal=True)


def short(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(MercatError) as caught:
        call()
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400, text[:500]
    return text


TASK = {"task": "t1", "request": "r1", "assets": ["n1"], "payouts": [1], "charge": 1,
        "fraction": 1}  # fmt: skip


@pytest.mark.parametrize(
    "call",
    [
        lambda: Offer(HUGE),
        lambda: Offer("n1", kind=HUGE),
        lambda: Offer("n1", capacity=HUGE_INT),
        lambda: Offer("n1", capacity={"gpu": HUGE}),
        lambda: Offer("n1", capacity={"gpu": HUGE_INT}),
        lambda: Offer("n1", cid=HUGE),
        lambda: Offer("n1", capabilities=HUGE_INT),
        lambda: Offer.from_wire({"asset": "n1", HUGE: 1}),
        lambda: RequestTerms("r1", HUGE_INT),
        lambda: RequestTerms("r1", 1, assets=HUGE_INT),
        lambda: RequestTerms("r1", 1, sealed=[f"s{i}" for i in range(64)]),
        lambda: TaskTerms.from_wire({**TASK, "task": HUGE}),
        lambda: TaskTerms.from_wire({**TASK, "charge": HUGE_LIST}),
    ],
)
def test_the_terms_types(call):
    short(call)


def test_the_in_memory_book():
    book = MemoryBook(RULE)
    short(lambda: MemoryBook(RULE, unit=HUGE))
    short(lambda: book.deposit(HUGE, 1))
    short(lambda: book.add_asset(HUGE, "n1", 990))
    book.open_account("alice")
    book.open_account(HUGE)  # an account is any name the caller gives
    short(lambda: book.open_account(HUGE))
    short(lambda: book.deposit("alice", HUGE_INT))
    short(lambda: book.post_offer("alice", Offer("n1")))
    short(lambda: book.withdraw_request("alice", HUGE))


def test_the_ledger(tmp_path):
    short(lambda: LedgerConfig(Keypair.generate().public, RULE, unit=HUGE_INT))
    short(lambda: Ledger.init(f"sqlite:///{tmp_path}/l.db", HUGE_LIST))  # type: ignore[arg-type]
    short(lambda: store_url("postgresql+" + HUGE + "://host/db"))
    short(lambda: stored_int(HUGE, "book 'pool'"))
    short(lambda: build(HUGE, {}))
    ledger = Ledger.init(
        f"sqlite:///{tmp_path}/m.db", LedgerConfig(Keypair.generate().public, RULE)
    )
    short(lambda: ledger.journal(after=HUGE))
    short(lambda: ledger.journal(limit=HUGE_LIST))
    short(lambda: ledger.asset(HUGE))


def test_the_chain_market():
    short(lambda: integer_rule("coll-stake", HUGE_INT, "0.01", 99))
    short(lambda: integer_rule("coll-stake", 990, HUGE_INT, 99))
    market = ChainMarket.deploy(BoaBackend(), integer_rule("coll-stake", 990, "0.01", 99))
    alice = market.new_account()
    short(lambda: market.deposit(HUGE, 1))
    short(lambda: market.deposit(alice, HUGE_LIST))
    short(lambda: market.register_asset(alice, HUGE, 990))
    short(lambda: market.post_offer(alice, HUGE))
    short(lambda: market.post_request(alice, HUGE_LIST))
    short(lambda: market.open_tasks(1, [HUGE]))
    short(lambda: market.open_tasks(1, [], margin_to=HUGE))
    short(lambda: market.settle_tasks(1, [Settlement(HUGE_LIST, "operator", True)]))  # type: ignore[arg-type]
