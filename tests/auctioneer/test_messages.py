"""Messages: every kind round-trips; bad frames are refused with a specific error."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.messages import (
    KINDS,
    Abort,
    BidBatch,
    Commit,
    Missed,
    Report,
    Result,
    Reveal,
    Transfer,
    Validate,
    decode,
    encode,
)
from mercat.errors import (
    BadSignatureError,
    MalformedMessageError,
    MessageTooLargeError,
    ProtocolError,
    UnsupportedVersionError,
)
from mercat.identity import Keypair

PROVIDER = Keypair(bytes(range(32)))
CLIENT = Keypair(bytes(range(1, 33)))
BIDS = BidVector.from_bids([Bid("u1", "buy", 1.25, 0.5), Bid("s1", "sell", 0.5, 2.0)])
D = bytes(range(32))


def keys(sender, cls):
    if cls.from_client:
        return sender
    return {"p1": PROVIDER.public}.get(sender)


EXAMPLES = [
    (BidBatch(3, BIDS, final=True), CLIENT.public, CLIENT),
    (Commit(3, D, D[::-1], D), "p1", PROVIDER),
    (Reveal(3, D, D, D, D, D), "p1", PROVIDER),
    (Report(3, BIDS), "p1", PROVIDER),
    (Validate(3, D), "p1", PROVIDER),
    (Transfer(3, "payments/0", np.arange(3.0).tobytes()), "p1", PROVIDER),
    (Abort(3, "timeout: no commit from p2"), "p1", PROVIDER),
    (Result(3, True, "", b"outcome bytes"), "p1", PROVIDER),
    (Result(3, False, "p2 aborted", b""), "p1", PROVIDER),
    (Result(3, True, "", b"x", (("bids", 10), ("commit", 2_250))), "p1", PROVIDER),
    (Missed(3, "bidding for round 3 closed here before your batch arrived", True), "p1", PROVIDER),
    (
        Missed(3, "round 3 opens for bids at 2026-01-01T00:00:30.000+00:00, in 4.2 s"),
        "p1",
        PROVIDER,
    ),
]


def test_every_kind_is_exercised():
    assert {type(m).kind for m, _, _ in EXAMPLES} == set(KINDS)


@pytest.mark.parametrize(("message", "sender", "key"), EXAMPLES)
def test_round_trip(message, sender, key):
    frames = encode(message, sender, key)
    assert len(frames) == 3
    signed = decode(frames, keys)
    assert signed.message == message and signed.sender == sender
    assert signed.size == sum(map(len, frames))


def header(frames):
    return json.loads(frames[0])


def reencode(h):
    return json.dumps(h, sort_keys=True, separators=(",", ":")).encode()


def test_tampering_breaks_the_signature():
    frames = encode(Validate(1, D), "p1", PROVIDER)
    h = header(frames)
    h["round"] = 2
    with pytest.raises(BadSignatureError):
        decode([reencode(h), frames[1], frames[2]], keys)
    body = encode(Transfer(1, "t", b"abc"), "p1", PROVIDER)
    with pytest.raises(BadSignatureError):
        decode([body[0], b"abd", body[2]], keys)
    # signed by the wrong key, claimed by p1
    with pytest.raises(BadSignatureError):
        decode(encode(Validate(1, D), "p1", CLIENT), keys)


def test_unknown_sender_and_client_kinds():
    with pytest.raises(BadSignatureError, match="unknown sender"):
        decode(encode(Validate(1, D), "p9", PROVIDER), keys)
    # a provider id on a client message, a client key on a provider message
    with pytest.raises(MalformedMessageError, match="bad sender"):
        decode(encode(BidBatch(1, BIDS), "p1", PROVIDER), keys)
    with pytest.raises(MalformedMessageError, match="bad sender"):
        decode(encode(Validate(1, D), CLIENT.public, CLIENT), keys)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda h: h.update(v=2), UnsupportedVersionError, "version 2"),
        (lambda h: h.update(kind="gossip"), MalformedMessageError, "unknown message kind"),
        (lambda h: h.update(round=-1), MalformedMessageError, "round must be"),
        (lambda h: h.update(round=True), MalformedMessageError, "round must be"),
        (lambda h: h.update(extra=1), MalformedMessageError, "fields"),
        (lambda h: h["meta"].update(digest="zz" * 32), MalformedMessageError, "hex"),
        (lambda h: h["meta"].update(digest="00"), MalformedMessageError, "64 hex"),
        (lambda h: h["meta"].pop("digest"), MalformedMessageError, "fields"),
    ],
)
def test_malformed_headers(change, error, words):
    frames = encode(Validate(1, D), "p1", PROVIDER)
    h = header(frames)
    change(h)
    raw = reencode(h)
    # re-sign so that only the malformation is at fault
    from mercat.auctioneer.messages import _signed_bytes

    with pytest.raises(error, match=words):
        decode([raw, frames[1], PROVIDER.sign(_signed_bytes(raw, frames[1]))], keys)


@pytest.mark.parametrize(
    "phases",
    [
        [["bids"]],
        [["bids", -1]],
        [["bids", 1.5]],
        [["bids", True]],
        [["Bids!", 1]],
        [["bids", 2**53]],
        [["p", 1]] * 9,
        {"bids": 1},
    ],
)
def test_malformed_phases_are_refused(phases):
    from mercat.auctioneer.messages import _signed_bytes

    frames = encode(Result(1, True, "", b"x", (("bids", 1),)), "p1", PROVIDER)
    h = header(frames)
    h["meta"]["phases"] = phases
    raw = reencode(h)
    with pytest.raises(MalformedMessageError, match="phase"):
        decode([raw, frames[1], PROVIDER.sign(_signed_bytes(raw, frames[1]))], keys)


def test_size_limits_come_first():
    frames = encode(Transfer(1, "t", bytes(2000)), "p1", PROVIDER)
    with pytest.raises(MessageTooLargeError):
        decode(frames, keys, max_bytes=1000)
    with pytest.raises(MessageTooLargeError, match="header"):
        decode([b"{" + b" " * 20_000 + b"}", b"", bytes(64)], keys)
    with pytest.raises(MalformedMessageError, match="3 frames"):
        decode(frames[:2], keys)


def test_body_rules():
    from mercat.auctioneer.messages import _signed_bytes

    frames = encode(Validate(1, D), "p1", PROVIDER)
    body = b"unexpected"
    with pytest.raises(MalformedMessageError, match="no body"):
        decode([frames[0], body, PROVIDER.sign(_signed_bytes(frames[0], body))], keys)
    batch = encode(BidBatch(1, BIDS), CLIENT.public, CLIENT)
    cut = batch[1][:-1]
    with pytest.raises(MalformedMessageError, match="sizes"):
        decode([batch[0], cut, CLIENT.sign(_signed_bytes(batch[0], cut))], keys)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=4))
def test_random_frames_never_escape_as_other_errors(frames):
    with pytest.raises(ProtocolError):
        decode(frames, keys)


def _bounded(data: bytes) -> object:
    """The reference: the project's bounded parser, value or (error type, message)."""
    from mercat.auctioneer.messages import MAX_HEADER_BYTES
    from mercat.untrusted import parse_json

    try:
        return parse_json(
            data, what="header", error=MalformedMessageError, max_bytes=MAX_HEADER_BYTES
        )
    except MalformedMessageError as exc:
        return (type(exc), str(exc))


def _fast(data: bytes) -> object:
    from mercat.auctioneer.messages import parse_header

    try:
        return parse_header(data)
    except MalformedMessageError as exc:
        return (type(exc), str(exc))


HEADER_TEXTS = [
    encode(Validate(1, D), "p1", PROVIDER)[0],
    encode(Result(1, True, "", b"x", (("bids", 1),)), "p1", PROVIDER)[0],
    b"[" * 64 + b"]" * 64,  # as deep as allowed, on the fast path's bound
    b"[" * 65 + b"]" * 65,  # one level too deep
    b'{"a": "' + b"[" * 100 + b'"}',  # brackets in a string: the bounded parser's verdict
    b"[" * 70,  # broken and deep
    b"{",
    b"",
    b"\xff\xfe{}",
    b'{"v": NaN}',
    b'"\xed\xa0\x80"',  # a lone surrogate in UTF-8
    json.dumps({"a": "é" * 10}).encode("utf-16"),  # not UTF-8
    b"{" + b" " * 20_000 + b"}",  # over the header's size limit
]


@pytest.mark.parametrize("data", HEADER_TEXTS)
def test_the_header_fast_path_equals_the_bounded_parser(data):
    assert repr(_fast(data)) == repr(_bounded(data))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=80,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_the_header_fast_path_equals_the_bounded_parser_on_any_text(data):
    assert repr(_fast(data)) == repr(_bounded(data))


# --- provider-to-provider MACs ---------------------------------------------------------------

PEERS = {f"p{i}": Keypair(bytes([i]) * 32) for i in (1, 2, 3)}
PUBLIC = {p: k.public for p, k in PEERS.items()}


def _macs(me):
    from mercat.auctioneer.messages import PeerMacs

    return PeerMacs(me, PEERS[me], PUBLIC)


def _peer_keys(sender, cls):
    return sender if cls.from_client else PUBLIC.get(sender)


@pytest.mark.parametrize("message", [m for m, sender, _ in EXAMPLES if sender == "p1"])
def test_a_peer_message_tagged_with_the_pairwise_mac_round_trips(message):
    from mercat.auctioneer.messages import encode_unsigned

    frames = _macs("p1").frames("p2", *encode_unsigned(message, "p1"))
    assert len(frames[2]) == 32  # a BLAKE2b tag, not a 64-byte signature
    got = decode(frames, _peer_keys, macs=_macs("p2"))
    assert got.sender == "p1" and got.message == message


def test_only_the_two_ends_of_a_pair_share_its_mac_key():
    from mercat.auctioneer.messages import encode_unsigned

    header, body = encode_unsigned(Validate(1, D), "p1")
    assert _macs("p1").tag("p2", b"x") == _macs("p2").tag("p1", b"x")  # both derive it
    # p3 tags a message as p1's with the keys it holds: p2 refuses it
    for forger_key in ("p2", "p1"):  # p3's keys with p2, with p1 (it has no p1-p2 key)
        forged = [header, body, _macs("p3").tag(forger_key, b"")]
        with pytest.raises(BadSignatureError, match="MAC"):
            decode(forged, _peer_keys, macs=_macs("p2"))
    # a tampered body or tag
    frames = _macs("p1").frames("p2", header, body)
    with pytest.raises(BadSignatureError):
        decode([frames[0], b"x", frames[2]], _peer_keys, macs=_macs("p2"))
    with pytest.raises(BadSignatureError):
        decode([*frames[:2], bytes(32)], _peer_keys, macs=_macs("p2"))
    # a MAC is no signature: a client (no keys shared) refuses a tagged frame
    with pytest.raises(BadSignatureError):
        decode(frames, _peer_keys)
    # a client's message cannot come with a MAC
    batch = encode_unsigned(BidBatch(1, BIDS), CLIENT.public)
    with pytest.raises(BadSignatureError):
        decode([*batch, _macs("p1").tag("p2", b"")], _peer_keys, macs=_macs("p2"))


def test_a_peer_message_signed_with_ed25519_is_still_accepted():
    frames = encode(Validate(1, D), "p1", PEERS["p1"])
    assert decode(frames, _peer_keys, macs=_macs("p2")).sender == "p1"
