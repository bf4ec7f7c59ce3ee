"""Bids and bid vectors: validity, canonical order and encoding, the words of the majority."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.auctioneer.bids import BUY, SELL, Bid, BidVector, bid_problem
from mercat.errors import InvalidParameterError, MalformedMessageError

ids = st.text("abcxyz019_.-", min_size=1, max_size=12)
values = st.floats(0, 10, allow_nan=False)


@st.composite
def vectors(draw):
    names = draw(st.lists(ids, unique=True, max_size=12))
    n = len(names)
    side = draw(st.lists(st.sampled_from([BUY, SELL]), min_size=n, max_size=n))
    price = draw(st.lists(values, min_size=n, max_size=n))
    quantity = draw(st.lists(st.floats(0.01, 5), min_size=n, max_size=n))
    return BidVector.from_arrays(names, np.array(side), np.array(price), np.array(quantity))


def test_parse_and_reject():
    assert Bid.parse("u7:buy:1.1:0.5") == Bid("u7", "buy", 1.1, 0.5)
    assert Bid.parse(" s1:sell:0.25:2 ") == Bid("s1", "sell", 0.25, 2.0)
    for text, words in [
        ("u7:buy:1.1", "ID:buy|sell:PRICE:QUANTITY"),
        ("u7:hold:1:1", "side"),
        ("u7:buy:x:1", "must be numbers"),
        ("u7:buy:-1:1", "price must be finite and >= 0"),
        ("u7:buy:1:0", "quantity must be finite and > 0"),
        ("u 7:buy:1:1", "bidder id"),
        ("u7:buy:nan:1", "price"),
    ]:
        with pytest.raises(InvalidParameterError, match=words):
            Bid.parse(text)


def test_bid_problem_is_the_rule_valid_mask_applies():
    # f, g, h: amounts beyond the market model's bound (10^15), alone or as a product; they
    # would overflow the allocator's sums, so they are ⊥, not a reason to fail the round.
    v = BidVector(
        ["a", "b", "c", "d", "e", "f", "g", "h"],
        np.array([BUY, SELL, 2, BUY, BUY, BUY, SELL, BUY], np.uint8),
        np.array([1.0, 0.0, 1.0, math.inf, 1.0, 1e308, 1.0, 1e8]),
        np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2e15, 1e8]),
    )
    expected = [
        bid_problem(int(s), float(p), float(q))
        for s, p, q in zip(v.side, v.price, v.quantity, strict=True)
    ]
    assert (
        v.valid_mask().tolist()
        == [e is None for e in expected]
        == [True, True, False, False, False, False, False, False]
    )
    assert v.valid().ids == ("a", "b")
    assert "at most 1e+15" in expected[5]


def test_two_bids_of_one_bidder_are_refused():
    with pytest.raises(InvalidParameterError, match="two bids"):
        BidVector.from_bids([Bid("a", "buy", 1, 1), Bid("a", "buy", 2, 1)])
    with pytest.raises(InvalidParameterError, match="unique"):
        BidVector.from_arrays(["a", "a"], np.zeros(2), np.ones(2), np.ones(2))


@settings(max_examples=60, deadline=None)
@given(vectors())
def test_encoding_round_trips_and_is_canonical(v):
    again = BidVector.decode(*v.sections())
    assert again == v and again.ids == v.ids
    assert again.digest() == v.digest()
    shuffled = np.random.default_rng(0).permutation(len(v))
    other = BidVector.from_arrays(
        [v.ids[i] for i in shuffled], v.side[shuffled], v.price[shuffled], v.quantity[shuffled]
    )
    assert other == v  # the order bids came in does not matter
    assert BidVector.from_words(v.ids, v.words()) == v
    assert BidVector.from_bids(v.bids()) == v


def test_equal_only_when_bit_identical():
    a = BidVector.from_bids([Bid("a", "buy", 0.1 + 0.2, 1)])
    b = BidVector.from_bids([Bid("a", "buy", 0.3, 1)])
    assert a != b  # 0.1 + 0.2 != 0.3 in binary: a different bid


def test_caller_arrays_stay_writeable():
    price = np.ones(2)
    v = BidVector(["a", "b"], np.zeros(2, np.uint8), price, np.ones(2))
    price[0] = 5.0  # the vector copied it
    assert v.price[0] == 1.0 and not v.price.flags.writeable


@pytest.mark.parametrize(
    ("sections", "words"),
    [
        ((b"a\nb", b"\x00", b"\x00" * 8, b"\x00" * 8), "2 bidder ids for 1 bids"),
        ((b"b\na", b"\x00\x00", b"\x00" * 16, b"\x00" * 16), "sorted and unique"),
        ((b"a\na", b"\x00\x00", b"\x00" * 16, b"\x00" * 16), "sorted and unique"),
        ((b"a b", b"\x00", b"\x00" * 8, b"\x00" * 8), "1-64 characters"),
        ((b"a", b"\x00", b"\x00" * 7, b"\x00" * 8), "inconsistent lengths"),
        ((b"\xff", b"\x00", b"\x00" * 8, b"\x00" * 8), "UTF-8"),
        ((b"a", b"", b"", b""), "empty vector"),
        ((b"x" * 65, b"\x00", b"\x00" * 8, b"\x00" * 8), "1-64 characters"),
    ],
)
def test_decode_refuses_malformed_sections(sections, words):
    with pytest.raises(MalformedMessageError, match=words):
        BidVector.decode(*sections)


def test_decode_keeps_invalid_values_for_the_rules_to_judge():
    v = BidVector.decode(b"a", b"\x00", np.array([-1.0]).tobytes(), np.array([1.0]).tobytes())
    assert len(v) == 1 and len(v.valid()) == 0
