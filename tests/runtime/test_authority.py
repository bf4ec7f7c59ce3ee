"""Nobody, the operator included, binds an asset or charges an escrow beyond what its owner
signed: each refusal leaves the book exactly as it was."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    MalformedMessageError,
    TermsViolationError,
)
from mercat.runtime.terms import PPB, Offer, RequestTerms, TaskTerms
from tests.runtime.book_fixtures import UNIT, funded_book, two_servers


def _book():
    book = funded_book()
    two_servers(book)
    book.add_asset(
        "bob", "m1", 5 * UNIT, Offer("m1", kind="model", cost=UNIT // 2, cid="bafkmodel1")
    )
    book.post_request("carol", RequestTerms("r1", max_price=3 * UNIT, demand={"gpu": 2}))
    return book


def _frozen(book):
    return copy.deepcopy((book.balances, book.assets, book.requests, book.tasks, book.usage))


def _refused(book, error, tasks, margin_to="operator", round_=1, match=None):
    before = _frozen(book)
    with pytest.raises(error, match=match):
        book.open_tasks(round_, tasks, margin_to)
    assert _frozen(book) == before


def task(**kw):
    base = {"task": "t0", "request": "r1", "assets": ("n1",), "payouts": (UNIT,), "charge": UNIT}
    base.update(kw)
    return TaskTerms(**base)


def test_an_asset_without_its_owners_offer_cannot_be_bound():
    book = _book()
    book.add_asset("alice", "bare", 5 * UNIT)  # staked, never offered
    _refused(book, TermsViolationError, [task(assets=("bare",))], match="no offer")


def test_a_server_is_never_paid_below_its_ask():
    book = _book()
    _refused(book, TermsViolationError, [task(payouts=(UNIT - 1,), charge=UNIT)], match="ask")


def test_the_fixed_cost_is_asked_once_per_round():
    book = _book()
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, demand={"gpu": 1}))
    first = task(payouts=(UNIT,), charge=UNIT)
    second = task(task="t1", request="r2", payouts=(0,), charge=0)
    book.open_tasks(1, [first, second])  # n1's cost is covered once


def test_the_charge_never_exceeds_the_escrow():
    book = _book()
    _refused(book, InsufficientFundsError, [task(payouts=(3 * UNIT + 1,), charge=3 * UNIT + 1)])


def test_capacity_holds_across_messages_of_one_round():
    book = _book()
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, demand={"gpu": 3}))
    book.open_tasks(1, [task()])
    _refused(
        book,
        TermsViolationError,
        [task(task="t1", request="r2", payouts=(0,), charge=0)],
        match="capacity",
    )


def test_capabilities_the_server_lacks_refuse_the_task():
    book = _book()
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, capabilities=["cuda"]))
    _refused(
        book,
        TermsViolationError,
        [task(request="r2", assets=("n2",))],
        match="capabilities",
    )


def test_named_assets_must_all_be_bound_and_nothing_else():
    book = _book()
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, assets=["bafkmodel1"]))
    _refused(book, TermsViolationError, [task(request="r2")], match="every asset")
    # a model the request does not name
    _refused(
        book,
        TermsViolationError,
        [task(assets=("n1", "m1"), payouts=(UNIT, UNIT // 2), charge=2 * UNIT)],
        match="does not name",
    )
    # named by CID and paid its price: accepted
    book.open_tasks(
        1, [task(request="r2", assets=("n1", "m1"), payouts=(UNIT, UNIT // 2), charge=2 * UNIT)]
    )


def test_replicas_are_the_request_s():
    book = _book()
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, replicas=2))
    _refused(book, TermsViolationError, [task(request="r2")], match="replicas")


def test_a_request_is_served_once_and_within_its_rounds():
    book = _book()
    book.open_tasks(1, [task()])
    _refused(book, TermsViolationError, [task(task="t9")], round_=2, match="served in round 1")
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT, expires=3))
    _refused(book, TermsViolationError, [task(request="r2")], round_=4, match="expired")
    half = task(request="r2", fraction=PPB // 2, payouts=(UNIT,))
    book.open_tasks(3, [half])
    _refused(
        book,
        TermsViolationError,
        [task(task="t5", request="r2", fraction=PPB // 2 + 1, assets=("n2",), payouts=(UNIT,))],
        round_=3,
        match="more than once",
    )


def test_removed_assets_cannot_be_bound():
    book = _book()
    book.assets["n1"] = replace(book.assets["n1"], status="removed")
    _refused(book, AssetNotActiveError, [task()])


def test_a_pool_held_round_cannot_be_subsidised():
    book = _book()
    _refused(
        book,
        TermsViolationError,
        [task(payouts=(2 * UNIT,), charge=UNIT)],
        margin_to="pool",
        match="subsidised",
    )


def test_a_subsidy_needs_the_operator_to_afford_it():
    book = funded_book(pool=0)
    two_servers(book)
    book.post_request("carol", RequestTerms("r1", max_price=3 * UNIT, demand={"gpu": 1}))
    book.transfer("operator", "alice", book.available("operator"))
    _refused(book, InsufficientFundsError, [task(payouts=(2 * UNIT,), charge=UNIT)])


def test_task_ids_and_fields_are_checked():
    book = _book()
    _refused(book, MalformedMessageError, [task(), task()], match="repeat")
    book.open_tasks(1, [task()])
    book.post_request("dave", RequestTerms("r2", max_price=3 * UNIT))
    _refused(book, AlreadyExistsError, [task(request="r2", assets=("n2",))], match="exists")
