"""Oracles that lie or go silent: an honest majority carries the verdict, on the in-memory
book and on the SQL ledger alike."""

from __future__ import annotations

import numpy as np
import pytest

from mercat.errors import QuorumNotReachedError
from mercat.identity import Keypair
from mercat.runtime.attest import OracleQuorum
from mercat.runtime.execute import Outcome
from mercat.runtime.snapshot import RoundMarket
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from tests.runtime.book_fixtures import UNIT, funded_book


def _opened(book, keys):
    book.add_oracles(keys)
    book.add_asset("alice", "n1", 5 * UNIT, Offer("n1", capacity={"gpu": 2}))
    book.post_request("carol", RequestTerms("r1", max_price=UNIT, demand={"gpu": 1}))
    task = TaskTerms("t0", "r1", ("n1",), (UNIT,), UNIT)
    book.open_tasks(1, [task])
    return task


def _attest(keys, behaviours, task, book, success=True):
    context = RoundMarket(1, UNIT, None, {"r1": book.requests["r1"]}, {}, {})  # type: ignore[arg-type]
    quorum = OracleQuorum(keys, behaviours)
    return quorum.attest(1, [Outcome(task, success, 10)], context, np.random.default_rng(0))


def test_a_lying_oracle_is_outvoted():
    keys = [Keypair.generate() for _ in range(3)]
    book = funded_book(quorum=2)
    task = _opened(book, keys)
    (attestation,) = _attest(keys, {keys[0].public: "liar"}, task, book)
    (done,) = book.settle(1, [attestation])
    assert done.paid


def test_a_silent_minority_does_not_stop_settlement_but_a_silent_majority_does():
    keys = [Keypair.generate() for _ in range(3)]
    book = funded_book(quorum=2)
    task = _opened(book, keys)
    silent = {keys[0].public: "silent", keys[1].public: "silent"}
    (attestation,) = _attest(keys, silent, task, book)
    with pytest.raises(QuorumNotReachedError):
        book.settle(1, [attestation])
    (attestation,) = _attest(keys, {keys[0].public: "silent"}, task, book, success=False)
    (done,) = book.settle(1, [attestation])
    assert not done.paid
