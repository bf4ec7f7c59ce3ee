"""Signed ledger messages: the only way to change a ledger.

A message is an *envelope* {domain, op, signer, nonce, body} encoded canonically (see
`mercat.identity.canonical_bytes`) and signed by `signer`. The ledger accepts a payload
only in its canonical form, so one message has exactly one encoding and one signature.
`nonce` is any integer in [0, 2^62) the signer has not used before: the ledger keeps every
(signer, nonce) it accepted and refuses a second use (ReplayedNonceError). Random nonces
(the default of `Signer.sign`) let one key sign from many threads and processes at once
without agreeing on a counter.

Each operation is a frozen dataclass below; its fields are checked by name:

| field                                   | must be                                   |
|-----------------------------------------|-------------------------------------------|
| amount, stake                           | integer base units in [1, 2^62)           |
| round                                   | integer in [0, 2^62)                      |
| account, to, oracle                     | a public key, 64 lowercase hex digits     |
| asset, old, new, request, task          | an id, 1-64 of [A-Za-z0-9_.-]             |
| assets                                  | a non-empty list of distinct ids          |
| payouts                                 | a list of integers in [0, 2^62), one per asset |
| report / reports                        | one / a list of signed oracle reports     |
"""

from __future__ import annotations

import json
import secrets
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from mercat.errors import MalformedMessageError
from mercat.identity import Keypair, canonical_bytes, check_public_key
from mercat.oracle.report import SignedReport, check_id, check_int
from mercat.untrusted import parse_json, shown

DOMAIN = "mercat/ledger/1"
MAX_MESSAGE_BYTES = 1 << 20
"""The largest signed message (and payload) parsed: a settlement with many oracle reports
stays far below it. Parsing also stops at `mercat.untrusted.MAX_DEPTH` levels of nesting."""


class Op:
    """Base of every operation. `name` is the `op` of the envelope."""

    name: ClassVar[str]


# --- accounts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAccount(Op):
    """The signer opens its own (user) account: proves it holds the key."""

    name: ClassVar[str] = "open_account"


@dataclass(frozen=True)
class AddOracle(Op):
    """Operator: admit a key to the oracle set."""

    name: ClassVar[str] = "add_oracle"
    oracle: str


@dataclass(frozen=True)
class AdvanceRound(Op):
    """Operator: move the ledger's round forward (unbonding matures by rounds)."""

    name: ClassVar[str] = "advance_round"
    round: int


# --- money ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deposit(Op):
    """Operator (the gateway from outside tokens): credit an account from `world`."""

    name: ClassVar[str] = "deposit"
    account: str
    amount: int


@dataclass(frozen=True)
class Withdraw(Op):
    """The signer sends spendable tokens out of the ledger (to `world`)."""

    name: ClassVar[str] = "withdraw"
    amount: int


@dataclass(frozen=True)
class Transfer(Op):
    name: ClassVar[str] = "transfer"
    to: str
    amount: int


@dataclass(frozen=True)
class FundPool(Op):
    """The signer moves spendable tokens into the collective reward pool."""

    name: ClassVar[str] = "fund_pool"
    amount: int


# --- stakes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddAsset(Op):
    """The signer puts a new asset on the market, staking at least the minimum."""

    name: ClassVar[str] = "add_asset"
    asset: str
    stake: int


@dataclass(frozen=True)
class Stake(Op):
    """The owner adds stake to an active asset."""

    name: ClassVar[str] = "stake"
    asset: str
    amount: int


@dataclass(frozen=True)
class Unstake(Op):
    """The owner takes stake off an asset; it waits `unstake_delay_rounds` in unbonding."""

    name: ClassVar[str] = "unstake"
    asset: str
    amount: int


@dataclass(frozen=True)
class Release(Op):
    """The signer moves every matured unbonding back to its spendable balance."""

    name: ClassVar[str] = "release"


@dataclass(frozen=True)
class ReplaceAsset(Op):
    """The owner replaces a removed asset by a new one, carrying the old one's remaining
    stake over and topping it up (or paying the excess back) to `stake`."""

    name: ClassVar[str] = "replace_asset"
    old: str
    new: str
    stake: int


# --- requests and tasks --------------------------------------------------------------------


@dataclass(frozen=True)
class Escrow(Op):
    """The signer escrows tokens for its request (opening the request on first use)."""

    name: ClassVar[str] = "escrow"
    request: str
    amount: int


@dataclass(frozen=True)
class Refund(Op):
    """The request's owner (or the operator) takes back what is left in its escrow."""

    name: ClassVar[str] = "refund"
    request: str


@dataclass(frozen=True)
class Pay(Op):
    """Operator: pay a node's owner from a request's escrow."""

    name: ClassVar[str] = "pay"
    request: str
    to: str
    amount: int


@dataclass(frozen=True)
class OpenTask(Op):
    """Operator: a task of `round` runs on `assets`; the sum of `payouts` moves from the
    request's escrow into the task's hold. On success asset i's owner gets payouts[i]; on
    failure the hold returns to the escrow."""

    name: ClassVar[str] = "open_task"
    round: int
    task: str
    request: str
    assets: tuple[str, ...]
    payouts: tuple[int, ...]


@dataclass(frozen=True)
class Report(Op):
    """Anyone relays an oracle's signed report (pending before settlement, late after)."""

    name: ClassVar[str] = "report"
    report: SignedReport


@dataclass(frozen=True)
class Settle(Op):
    """Anyone settles a task once a quorum of oracles agrees (reports relayed earlier plus
    `reports`). Idempotent: a settled task is left as it is."""

    name: ClassVar[str] = "settle"
    round: int
    task: str
    reports: tuple[SignedReport, ...] = ()


OPS: dict[str, type[Op]] = {
    op.name: op
    for op in (
        OpenAccount, AddOracle, AdvanceRound, Deposit, Withdraw, Transfer, FundPool,
        AddAsset, Stake, Unstake, Release, ReplaceAsset, Escrow, Refund, Pay, OpenTask,
        Report, Settle,
    )
}  # fmt: skip


# --- field checks by name ------------------------------------------------------------------


def _ids(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise MalformedMessageError(f"{what} must be a non-empty list")
    items = tuple(check_id(v, f"{what}[{i}]") for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise MalformedMessageError(f"{what} repeat: {list(items)!r}")
    return items


def _amounts(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise MalformedMessageError(f"{what} must be a list")
    return tuple(check_int(v, f"{what}[{i}]") for i, v in enumerate(value))


def _reports(value: object, what: str) -> tuple[SignedReport, ...]:
    if not isinstance(value, list | tuple):
        raise MalformedMessageError(f"{what} must be a list")
    return tuple(_report(v, f"{what}[{i}]") for i, v in enumerate(value))


def _report(value: object, what: str) -> SignedReport:
    if isinstance(value, SignedReport):
        value = value.to_wire()
    return SignedReport.from_wire(value)


_CHECKS: dict[str, Any] = {
    "amount": lambda v, w: check_int(v, w, 1),
    "stake": lambda v, w: check_int(v, w, 1),
    "round": check_int,
    "account": check_public_key,
    "to": check_public_key,
    "oracle": check_public_key,
    "asset": check_id,
    "old": check_id,
    "new": check_id,
    "request": check_id,
    "task": check_id,
    "assets": _ids,
    "payouts": _amounts,
    "report": _report,
    "reports": _reports,
}


def _wire(value: Any) -> Any:
    if isinstance(value, SignedReport):
        return value.to_wire()
    if isinstance(value, tuple | list):
        return [_wire(v) for v in value]
    return value


def build(op_name: str, body: object) -> Op:
    """The operation `op_name` with fields from `body`; MalformedMessageError if anything
    is missing, extra or of the wrong kind."""
    cls = OPS.get(op_name) if isinstance(op_name, str) else None
    if cls is None:
        raise MalformedMessageError(f"unknown operation {op_name!r}; known: {', '.join(OPS)}")
    if not isinstance(body, dict):
        raise MalformedMessageError(f"body of {op_name} must be an object")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    required = {f.name for f in fields(cls) if f.default is MISSING}  # type: ignore[arg-type]
    if not required <= set(body) <= names:
        raise MalformedMessageError(
            f"{op_name} takes fields {sorted(names)} (required {sorted(required)}), "
            f"got {sorted(body)}"
        )
    values = {key: _CHECKS[key](value, f"{op_name}.{key}") for key, value in body.items()}
    op = cls(**values)
    if isinstance(op, OpenTask) and len(op.payouts) != len(op.assets):
        raise MalformedMessageError("open_task needs one payout per asset")
    return op


# --- envelopes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedMessage:
    """A canonical payload and its Ed25519 signature (what travels and what is stored)."""

    payload: bytes
    signature: bytes

    def to_json(self) -> str:
        return json.dumps({"payload": self.payload.decode(), "signature": self.signature.hex()})

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedMessage:
        data = parse_json(
            text, what="a signed message", error=MalformedMessageError, max_bytes=MAX_MESSAGE_BYTES
        )
        try:
            return cls(data["payload"].encode(), bytes.fromhex(data["signature"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedMessageError(f"not a signed message: {exc}") from exc


@dataclass(frozen=True)
class Envelope:
    """A parsed message: who asks for what, under which nonce."""

    op: Op
    signer: str
    nonce: int


def envelope_payload(op: Op, signer: str, nonce: int) -> bytes:
    body = {f.name: _wire(getattr(op, f.name)) for f in fields(op)}  # type: ignore[arg-type]
    return canonical_bytes(
        {"domain": DOMAIN, "op": op.name, "signer": signer, "nonce": nonce, "body": body}
    )


def parse(message: SignedMessage) -> Envelope:
    """Decode and check a message's payload (not its signature). MalformedMessageError."""
    if not isinstance(message, SignedMessage) or not isinstance(message.payload, bytes):
        raise MalformedMessageError("expected a SignedMessage")
    data = parse_json(
        message.payload,
        what="the payload",
        error=MalformedMessageError,
        max_bytes=MAX_MESSAGE_BYTES,
    )
    keys = {"domain", "op", "signer", "nonce", "body"}
    if not isinstance(data, dict) or set(data) != keys:
        raise MalformedMessageError(f"an envelope has exactly the fields {sorted(keys)}")
    if data["domain"] != DOMAIN:
        raise MalformedMessageError(f"domain must be {DOMAIN!r}, got {shown(data['domain'])}")
    signer = check_public_key(data["signer"], "signer")
    nonce = check_int(data["nonce"], "nonce")
    op = build(data["op"], data["body"])
    if canonical_bytes(data) != message.payload:
        raise MalformedMessageError("payload is not in canonical form")
    return Envelope(op, signer, nonce)


class Signer:
    """Signs operations with one key: `Signer(key).sign(Deposit(...))`."""

    def __init__(self, key: Keypair) -> None:
        self.key = key
        self.public = key.public

    def sign(self, op: Op, nonce: int | None = None) -> SignedMessage:
        if nonce is None:
            nonce = secrets.randbits(62)
        payload = envelope_payload(op, self.public, nonce)
        return SignedMessage(payload, self.key.sign(payload))
