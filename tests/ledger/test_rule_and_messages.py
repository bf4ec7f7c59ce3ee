"""The integer collective rule and the message format, without a store."""

from __future__ import annotations

import contextlib
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercat.errors import BadSignatureError, InvalidParameterError, MalformedMessageError
from mercat.identity import Keypair, canonical_bytes, verify
from mercat.incentives.collective import CollectiveRule
from mercat.ledger import (
    IntegerRule,
    Offer,
    OpenTasks,
    PostOffer,
    PostRequest,
    RequestTerms,
    Settle,
    SettleTasks,
    SignedMessage,
    Signer,
    TaskReports,
    TaskTerms,
    Transfer,
)
from mercat.ledger.messages import OPS, parse
from mercat.oracle import OracleReport, SignedReport


def test_conversion_snaps_float_noise_and_rounds_the_rest_as_documented():
    noisy = CollectiveRule(penalty=99.0, reward=0.01 * 99 / 0.99, removal=True,
                           stake_floor=0.99, stake_cap=990.0)  # fmt: skip
    rule = IntegerRule.from_collective(noisy, 1000)
    assert (rule.penalty, rule.reward, rule.stake_floor, rule.stake_cap) == (
        99_000,
        1000,
        990,
        990_000,
    )
    odd = CollectiveRule(
        penalty=1.0, reward=1 / 19, removal=True, stake_floor=1 / 3, stake_cap=2 / 3
    )
    rule = IntegerRule.from_collective(odd, 100)
    assert (rule.reward, rule.stake_floor, rule.stake_cap) == (5, 34, 66)  # down, up, down
    with pytest.raises(InvalidParameterError, match="whole number"):
        IntegerRule.from_collective(CollectiveRule(penalty=0.5, reward=0.0, removal=True), 1)


def test_calibrated_reward_is_exact_for_decimal_targets():
    assert IntegerRule.calibrated_reward(0.01, 99) == 1
    assert IntegerRule.calibrated_reward("0.05", 10**6) == 52_631
    assert IntegerRule.calibrated_reward(Fraction(1, 3), 10) == 5


@given(stake=st.integers(0, 10**6), success=st.booleans(), reward=st.integers(0, 500),
       penalty=st.integers(1, 500), floor=st.none() | st.integers(0, 50))  # fmt: skip
def test_an_integer_stake_never_goes_negative(stake, success, reward, penalty, floor):
    rule = IntegerRule(penalty=penalty, reward=reward, removal=False, stake_floor=floor)
    assert rule.updated_stake(stake, success) >= 0


def test_messages_round_trip_and_only_the_canonical_form_parses():
    key = Keypair.generate()
    message = Signer(key, LEDGER).sign(Transfer(to="ab" * 32, amount=5), nonce=3, expires=99)
    envelope = parse(message)
    assert (envelope.signer, envelope.nonce, envelope.op) == (key.public, 3, Transfer("ab" * 32, 5))
    assert (envelope.ledger, envelope.expires) == (LEDGER, 99)
    verify(key.public, message.payload, message.signature)
    with pytest.raises(MalformedMessageError, match="canonical"):
        parse(type(message)(message.payload.replace(b",", b", "), message.signature))
    with pytest.raises(BadSignatureError):
        verify(Keypair.generate().public, message.payload, message.signature)


def test_every_operation_survives_the_wire():
    key, oracle = Keypair.generate(), Keypair.generate()
    report = SignedReport.sign(OracleReport(3, "t", True, False, 250, "bafy.x", LEDGER), oracle)
    offer = Offer("gpu", capacity={"gpu": 4}, capabilities=["cuda"], cost=5, cid="bafk1")
    terms = RequestTerms(
        "r",
        max_price=9,
        demand={"gpu": 2},
        replicas=2,
        assets=["bafk1"],
        inputs=["bafkin"],
        workload="train",
        deadline_ms=500,
        expires=7,
    )
    task = TaskTerms("t", "r", ("a", "b"), (1, 0), 3, 10**9)
    for op in (OpenTasks(round=3, tasks=(task,), margin_to="pool"),
               Settle(round=3, task="t", reports=(report,)), PostOffer(offer=offer),
               PostRequest(terms=terms), SettleTasks(round=3, settlements=(
                   TaskReports("t", (report,)),))):  # fmt: skip
        assert parse(Signer(key, LEDGER).sign(op)).op == op
    assert len(OPS) == 19


LEDGER = "0123456789abcdef" * 2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.sampled_from(sorted(OPS)), json_values)
def test_any_json_payload_is_parsed_or_refused_as_malformed(op, value):
    payload = canonical_bytes({"domain": "mercat/ledger/2", "ledger": LEDGER, "op": op,
                               "signer": "ab" * 32, "nonce": 1, "expires": 5,
                               "body": value})  # fmt: skip
    key = Keypair.generate()
    with contextlib.suppress(MalformedMessageError):  # anything else is a bug
        parse(SignedMessage(payload, key.sign(payload)))


@given(json_values)
def test_any_json_offer_terms_or_task_is_parsed_or_refused_as_malformed(value):
    for parser in (Offer.from_wire, RequestTerms.from_wire, TaskTerms.from_wire):
        with contextlib.suppress(MalformedMessageError):
            parser(value)
        if isinstance(value, dict):
            with contextlib.suppress(MalformedMessageError):
                parser({"asset": "a", "request": "r", "max_price": 1, **value})


def test_floats_never_enter_a_signed_payload():
    with pytest.raises(MalformedMessageError, match="float"):
        canonical_bytes({"amount": 1.0})
