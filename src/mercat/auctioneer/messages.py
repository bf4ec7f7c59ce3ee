"""The auctioneer's messages: typed, versioned, size-limited, signed.

On the wire a message is three frames (ZeroMQ multipart; the in-process transport carries
the same bytes):

    header     canonical JSON {"v": 1, "kind": ..., "round": r, "from": sender, "meta": {...}}
    body       bytes (bid vectors, task results, outcomes: binary, see each kind)
    signature  Ed25519 over  b"mercat/auctioneer/1" 0x00 || SHA-256(header) || SHA-256(body)
               (between providers: a 32-byte BLAKE2b MAC of the same bytes, see PeerMacs)

Signing the two digests rather than the body keeps signing and verifying independent of
the body's size (a 10^4-bid vector is 250 kB). A provider signs with its key; its `from` is
its id in the peers file, whose public key the receiver looks up. A bidder's client signs
with its own key and its `from` *is* that public key (hex), so bids need no registration.

`decode` checks, in this order, and raises a `MalformedMessageError` subclass (the caller
drops the message and logs why): the frame count and total size (`MessageTooLargeError`,
before parsing anything), the header's JSON and fields, the version
(`UnsupportedVersionError`), the kind, the sender's key, the signature
(`BadSignatureError`), then the kind's own fields.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import nacl.exceptions
import nacl.signing

from mercat.auctioneer.bids import BidVector
from mercat.errors import (
    BadSignatureError,
    MalformedMessageError,
    MessageTooLargeError,
    UnsupportedVersionError,
)
from mercat.identity import Keypair, canonical_bytes
from mercat.untrusted import MAX_DEPTH, parse_json

VERSION = 1
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_REASON = 300
DOMAIN = b"mercat/auctioneer/1\x00"
MAC_DOMAIN = b"mercat/auctioneer/peer-mac/1\x00"
MAC_BYTES = 32
PROVIDER_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
CLIENT_KEY = re.compile(r"[0-9a-f]{64}")
TASK_NAME = re.compile(r"[A-Za-z0-9_./:-]{1,100}")
PHASE_NAME = re.compile(r"[a-z0-9_]{1,16}")
MAX_PHASES = 8


class Message:
    """Base of the typed messages: `kind`, `round`, and the (meta, body) codec."""

    kind: ClassVar[str]
    from_client: ClassVar[bool] = False  # signed by a bidder's key, not a provider's
    to_client: ClassVar[bool] = False  # a provider's answer to a bidder client
    round: int

    def pack(self) -> tuple[dict[str, Any], bytes]:
        raise NotImplementedError

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Message:
        raise NotImplementedError


@dataclass(frozen=True)
class BidBatch(Message):
    """Bidder client -> provider: bids for a round. `final`: the client sends no more bids
    this round (a provider configured to wait for that client may close bidding early)."""

    kind: ClassVar[str] = "bids"
    from_client: ClassVar[bool] = True
    round: int
    bids: BidVector
    final: bool = False

    def pack(self) -> tuple[dict[str, Any], bytes]:
        sizes, body = _pack_vector(self.bids)
        return {"final": self.final, "sizes": sizes}, body

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> BidBatch:
        _keys(meta, {"final", "sizes"})
        return cls(round_id, _unpack_vector(meta["sizes"], body), _bool(meta, "final"))


@dataclass(frozen=True)
class Commit(Message):
    """Phase 1: commitments to the provider's report and coin share, and the digest of the
    protocol parameters it runs with (providers with different parameters never agree)."""

    kind: ClassVar[str] = "commit"
    round: int
    params_digest: bytes
    report_commitment: bytes
    coin_commitment: bytes

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {
            "params": self.params_digest.hex(),
            "report": self.report_commitment.hex(),
            "coin": self.coin_commitment.hex(),
        }, b""

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Commit:
        _keys(meta, {"params", "report", "coin"})
        _empty(body)
        return cls(round_id, _hex(meta, "params"), _hex(meta, "report"), _hex(meta, "coin"))


@dataclass(frozen=True)
class Reveal(Message):
    """Phase 2: the digest of the report and the coin share, with their salts, and the
    digest of the commitments the sender holds (the echo that exposes equivocation in
    phase 1). The report itself travels only if the digests differ (`Report`)."""

    kind: ClassVar[str] = "reveal"
    round: int
    report_digest: bytes
    report_salt: bytes
    coin_share: bytes
    coin_salt: bytes
    commitments_digest: bytes

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {
            "report": self.report_digest.hex(),
            "report_salt": self.report_salt.hex(),
            "coin": self.coin_share.hex(),
            "coin_salt": self.coin_salt.hex(),
            "commitments": self.commitments_digest.hex(),
        }, b""

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Reveal:
        _keys(meta, {"report", "report_salt", "coin", "coin_salt", "commitments"})
        _empty(body)
        return cls(
            round_id,
            _hex(meta, "report"),
            _hex(meta, "report_salt"),
            _hex(meta, "coin"),
            _hex(meta, "coin_salt"),
            _hex(meta, "commitments"),
        )


@dataclass(frozen=True)
class Report(Message):
    """Phase 2b, only when the revealed report digests differ: the full report."""

    kind: ClassVar[str] = "report"
    round: int
    report: BidVector

    def pack(self) -> tuple[dict[str, Any], bytes]:
        sizes, body = _pack_vector(self.report)
        return {"sizes": sizes}, body

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Report:
        _keys(meta, {"sizes"})
        return cls(round_id, _unpack_vector(meta["sizes"], body))


@dataclass(frozen=True)
class Validate(Message):
    """Phase 3 (input validation): the digest of the allocator's input."""

    kind: ClassVar[str] = "validate"
    round: int
    digest: bytes

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {"digest": self.digest.hex()}, b""

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Validate:
        _keys(meta, {"digest"})
        _empty(body)
        return cls(round_id, _hex(meta, "digest"))


@dataclass(frozen=True)
class Transfer(Message):
    """Data transfer: the encoded result of a task, from a member of the task's group."""

    kind: ClassVar[str] = "transfer"
    round: int
    task: str
    value: bytes

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {"task": self.task}, self.value

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Transfer:
        _keys(meta, {"task"})
        task = meta["task"]
        if not isinstance(task, str) or not TASK_NAME.fullmatch(task):
            raise MalformedMessageError(f"bad task name {str(task)[:110]!r}")
        return cls(round_id, task, body)


@dataclass(frozen=True)
class Abort(Message):
    """The sender output ⊥ for this round (so its peers stop waiting)."""

    kind: ClassVar[str] = "abort"
    round: int
    reason: str

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {"reason": self.reason[:MAX_REASON]}, b""

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Abort:
        _keys(meta, {"reason"})
        _empty(body)
        return cls(round_id, _text(meta, "reason"))


@dataclass(frozen=True)
class Result(Message):
    """Provider -> bidder client: the round's output at this provider, (x, p) or ⊥."""

    kind: ClassVar[str] = "result"
    to_client: ClassVar[bool] = True
    round: int
    ok: bool
    reason: str
    outcome: bytes  # an encoded Outcome when ok, else empty
    # (phase, microseconds since the round opened at the sender), for timing only: clients
    # compare outcomes, never phases. Optional on the wire.
    phases: tuple[tuple[str, int], ...] = ()

    def pack(self) -> tuple[dict[str, Any], bytes]:
        meta: dict[str, Any] = {"ok": self.ok, "reason": self.reason[:MAX_REASON]}
        if self.phases:
            meta["phases"] = [[name, int(us)] for name, us in self.phases]
        return meta, self.outcome

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Result:
        _keys(meta, {"ok", "reason", "phases"} if "phases" in meta else {"ok", "reason"})
        ok = _bool(meta, "ok")
        if not ok:
            _empty(body)
        phases = _phases(meta["phases"]) if "phases" in meta else ()
        return cls(round_id, ok, _text(meta, "reason"), body, phases)


@dataclass(frozen=True)
class Missed(Message):
    """Provider -> bidder client: this provider did not take the client's batch for the
    round, and why (the round is not open for bids here, or bidding closed before the batch
    arrived). `result_follows`: the round runs here and its Result will follow, so the
    client can see whether the other providers took its bids."""

    kind: ClassVar[str] = "missed"
    to_client: ClassVar[bool] = True
    round: int
    reason: str
    result_follows: bool = False

    def pack(self) -> tuple[dict[str, Any], bytes]:
        return {"reason": self.reason[:MAX_REASON], "result_follows": self.result_follows}, b""

    @classmethod
    def unpack(cls, round_id: int, meta: dict[str, Any], body: bytes) -> Missed:
        _keys(meta, {"reason", "result_follows"})
        _empty(body)
        return cls(round_id, _text(meta, "reason"), _bool(meta, "result_follows"))


KINDS: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (BidBatch, Commit, Reveal, Report, Validate, Transfer, Abort, Result, Missed)
}


@dataclass(frozen=True)
class Signed:
    """A decoded message, the sender that signed it, and its size on the wire."""

    sender: str
    message: Message
    size: int


def encode(message: Message, sender: str, key: Keypair) -> list[bytes]:
    """The three frames of `message`, signed by `key` on behalf of `sender`."""
    header, body = encode_unsigned(message, sender)
    return [header, body, key.sign(_signed_bytes(header, body))]


def encode_unsigned(message: Message, sender: str) -> tuple[bytes, bytes]:
    """The header and body frames of `message` from `sender` (`PeerMacs.frames` adds a tag)."""
    meta, body = message.pack()
    header = canonical_bytes(
        {"v": VERSION, "kind": message.kind, "round": message.round, "from": sender, "meta": meta}
    )
    return header, body


class PeerMacs:
    """Pairwise MAC keys between one provider and its peers: how provider-to-provider
    messages are authenticated on the hot path.

    Seed 003's providers know each other's identities and talk over point-to-point
    channels; no step of the protocol forwards a peer's message to a third party, so a
    message from p to q needs to convince q alone that p sent it. A MAC under a key only p
    and q hold does that, as a signature does, for a fraction of the cost: verifying an
    Ed25519 signature takes 60-120 µs here and a provider at k = 3 verifies 14 a round (a
    tenth of its CPU), a BLAKE2b tag takes about a microsecond. The key of p and q is
    BLAKE2b of their X25519 shared secret (each one's Ed25519 key from the peers file,
    converted by libsodium) and both ids, so no new key material is distributed.

    Results to clients and bids from clients stay Ed25519-signed (a client checks every
    provider's Result itself). A receiver also accepts a peer's message signed with
    Ed25519, as before: either proves the sender, and a deviator's forged frames are
    tested against both."""

    def __init__(self, me: str, key: Keypair, peers: dict[str, str]) -> None:
        import nacl.public

        own = nacl.signing.SigningKey(key.seed).to_curve25519_private_key()
        self._keys: dict[str, bytes] = {}
        for peer, public in peers.items():
            if peer == me:
                continue
            try:
                theirs = nacl.signing.VerifyKey(bytes.fromhex(public)).to_curve25519_public_key()
                shared = nacl.public.Box(own, theirs).shared_key()
            except (ValueError, nacl.exceptions.CryptoError):  # not a usable point: sign
                continue
            ids = "\0".join(sorted((me, peer))).encode()
            self._keys[peer] = hashlib.blake2b(
                MAC_DOMAIN + ids, key=shared, digest_size=MAC_BYTES
            ).digest()

    def __contains__(self, peer: object) -> bool:
        return peer in self._keys

    def tag(self, peer: str, signed: bytes) -> bytes:
        return hashlib.blake2b(signed, key=self._keys[peer], digest_size=MAC_BYTES).digest()

    def frames(self, peer: str, header: bytes, body: bytes) -> list[bytes]:
        """The three frames of a message to `peer`, tagged with the key shared with it."""
        return [header, body, self.tag(peer, _signed_bytes(header, body))]

    def check(self, sender: str, signed: bytes, tag: bytes) -> None:
        if sender not in self._keys or not hmac.compare_digest(self.tag(sender, signed), tag):
            raise BadSignatureError(f"bad MAC from provider {sender!r}")


KeyLookup = Callable[[str, type[Message]], str | None]
"""(sender, message class) -> the sender's public key (hex), or None if unknown."""


class Verifier:
    """Caches the parsed verification keys: 10^3 messages a round re-use a handful."""

    def __init__(self) -> None:
        self._keys: dict[str, nacl.signing.VerifyKey] = {}

    def verify(self, public_key: str, message: bytes, signature: bytes) -> None:
        key = self._keys.get(public_key)
        if key is None:
            if not CLIENT_KEY.fullmatch(public_key):
                raise MalformedMessageError("a public key is 64 lowercase hex digits")
            key = nacl.signing.VerifyKey(bytes.fromhex(public_key))
            if len(self._keys) > 4096:  # bound the cache: clients are unbounded
                self._keys.clear()
            self._keys[public_key] = key
        try:
            key.verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
            raise BadSignatureError(f"bad signature for key {public_key[:16]}…") from exc


def decode(
    frames: list[bytes],
    key_of: KeyLookup,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    verifier: Verifier | None = None,
    macs: PeerMacs | None = None,
) -> Signed:
    """Parse and authenticate three frames; raise MalformedMessageError (or a subclass).
    With `macs`, a provider's message may carry a MAC (`PeerMacs`) instead of a signature."""
    if len(frames) != 3:
        raise MalformedMessageError(f"a message has 3 frames, got {len(frames)}")
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise MessageTooLargeError(f"message of {size} bytes exceeds the limit {max_bytes}")
    header_bytes, body, signature = (bytes(f) for f in frames)
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise MessageTooLargeError(f"header of {len(header_bytes)} bytes")
    header = parse_header(header_bytes)
    if not isinstance(header, dict):
        raise MalformedMessageError("header is not a JSON object")
    if header.get("v") != VERSION:
        raise UnsupportedVersionError(f"protocol version {header.get('v')!r}, expected {VERSION}")
    _keys(header, {"v", "kind", "round", "from", "meta"})
    kind, round_id, sender, meta = header["kind"], header["round"], header["from"], header["meta"]
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MalformedMessageError(f"unknown message kind {str(kind)[:40]!r}")
    if isinstance(round_id, bool) or not isinstance(round_id, int) or not 0 <= round_id < 2**62:
        raise MalformedMessageError(f"round must be an integer in [0, 2^62), got {round_id!r}")
    if not isinstance(sender, str) or not isinstance(meta, dict):
        raise MalformedMessageError("header 'from' must be a string and 'meta' an object")
    pattern = CLIENT_KEY if cls.from_client else PROVIDER_ID
    if not pattern.fullmatch(sender):
        raise MalformedMessageError(f"bad sender {sender[:70]!r} for a {kind} message")
    public_key = key_of(sender, cls)
    if public_key is None:
        raise BadSignatureError(f"unknown sender {sender!r} of a {kind} message")
    signed = _signed_bytes(header_bytes, body)
    if macs is not None and len(signature) == MAC_BYTES and not cls.from_client:
        macs.check(sender, signed, signature)
    else:
        (verifier or Verifier()).verify(public_key, signed, signature)
    try:
        message = cls.unpack(round_id, meta, body)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedMessageError):
            raise
        raise MalformedMessageError(f"bad {kind} message: {exc}") from None
    return Signed(sender, message, size)


# --- helpers ---------------------------------------------------------------------------


def parse_header(data: bytes) -> Any:
    """A header's JSON value, exactly as the bounded parser `parse_json` gives it (the same
    value, the same one-line error), but cheaper for the headers peers actually send.

    The bounded parser scans every header for its nesting depth (numpy over the brackets,
    about 60 µs, as much as verifying its signature, and paid 2(m-1) times a round). A text
    with at most MAX_DEPTH brackets in all cannot nest deeper than MAX_DEPTH, so for it
    the scan is skipped; anything else, and any text the plain parser refuses, goes through
    `parse_json` for its verdict and message."""
    if len(data) <= MAX_HEADER_BYTES and data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included: the bounded parser says why
            pass
    # nested at most MAX_DEPTH levels: 16 kB of brackets recursed
    return parse_json(data, what="header", error=MalformedMessageError, max_bytes=MAX_HEADER_BYTES)


def _signed_bytes(header: bytes, body: bytes) -> bytes:
    return DOMAIN + hashlib.sha256(header).digest() + hashlib.sha256(body).digest()


def _pack_vector(vector: BidVector) -> tuple[list[int], bytes]:
    parts = vector.sections()
    return [len(p) for p in parts], b"".join(parts)


def _unpack_vector(sizes: object, body: bytes) -> BidVector:
    if (
        not isinstance(sizes, list)
        or len(sizes) != 4
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes)
        or sum(sizes) != len(body)
    ):
        raise MalformedMessageError("bid vector sizes do not match the body")
    cuts = [0]
    for s in sizes:
        cuts.append(cuts[-1] + s)
    ids, side, price, quantity = (body[a:b] for a, b in itertools.pairwise(cuts))
    return BidVector.decode(ids, side, price, quantity)


def _keys(mapping: dict[str, Any], expected: set[str]) -> None:
    if set(mapping) != expected:
        raise MalformedMessageError(
            f"fields {sorted(mapping)} differ from the expected {sorted(expected)}"
        )


def _hex(meta: dict[str, Any], name: str, size: int = 32) -> bytes:
    value = meta[name]
    if not isinstance(value, str) or len(value) != 2 * size:
        raise MalformedMessageError(f"{name} must be {2 * size} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedMessageError(f"{name} must be {2 * size} hex digits") from None


def _bool(meta: dict[str, Any], name: str) -> bool:
    value = meta[name]
    if not isinstance(value, bool):
        raise MalformedMessageError(f"{name} must be true or false")
    return value


def _text(meta: dict[str, Any], name: str) -> str:
    value = meta[name]
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise MalformedMessageError(f"{name} must be a string of at most {MAX_REASON} characters")
    return value


def _phases(value: object) -> tuple[tuple[str, int], ...]:
    """At most MAX_PHASES [name, microseconds] pairs: short names, integers in [0, 2^53)."""
    if not isinstance(value, list) or len(value) > MAX_PHASES:
        raise MalformedMessageError(f"phases must be a list of at most {MAX_PHASES} pairs")
    out = []
    for item in value:
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and PHASE_NAME.fullmatch(item[0]) is not None
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and 0 <= item[1] < 2**53
        )
        if not ok:
            raise MalformedMessageError(f"a phase must be [name, microseconds], got {item!r}")
        out.append((item[0], item[1]))
    return tuple(out)


def _empty(body: bytes) -> None:
    if body:
        raise MalformedMessageError("this kind of message has no body")
