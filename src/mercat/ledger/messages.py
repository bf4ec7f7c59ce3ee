"""Signed ledger messages: the only way to change a ledger.

A message is an *envelope* {domain, ledger, op, signer, nonce, expires, body} encoded
canonically (see `mercat.identity.canonical_bytes`) and signed by `signer`. The ledger
accepts a payload only in its canonical form, so one message has exactly one encoding and
one signature.

- `ledger` is the id of the one ledger the message is for (`LedgerConfig.ledger_id`, drawn
  at random when the ledger is created): a message signed for one ledger is refused by every
  other (WrongLedgerError), even where its signer has an account on both.
- `expires` is the Unix time (seconds) after which the message is refused (ExpiredMessageError);
  a ledger also refuses one that claims to stay valid more than `MAX_VALIDITY_S` ahead, so a
  signed message is good for at most a week, and by default (`Signer.sign`) for an hour.
- `nonce` is any integer in [0, 2^62) the signer has not used before: the ledger keeps every
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
| offer                                   | an asset's offer (`mercat.runtime.terms.Offer`) |
| terms                                   | a request's terms (`RequestTerms`)        |
| tasks                                   | 1 to `MAX_TASKS` tasks (`TaskTerms`)      |
| margin_to                               | "operator" or "pool"                      |
| settlements                             | 1 to `MAX_TASKS` {task, reports}          |
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from mercat.errors import MalformedMessageError
from mercat.identity import Keypair, canonical_bytes, check_public_key
from mercat.ledger.report_signatures import plain_key
from mercat.oracle.report import OracleReport, SignedReport, check_id, check_int
from mercat.runtime.records import MARGIN_HOLDERS
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from mercat.untrusted import parse_json, shown

DOMAIN = "mercat/ledger/2"
DEFAULT_VALIDITY_S = 3600
MAX_VALIDITY_S = 7 * 24 * 3600
MAX_TASKS = 50_000
"""The most tasks one message opens or settles (a round opens in batches of at most this)."""
MAX_MESSAGE_BYTES = 64 << 20
"""The largest signed message (and payload) parsed: a batch of MAX_TASKS settlements, each
with its quorum of oracle reports, stays below it. Parsing also stops at
`mercat.untrusted.MAX_DEPTH` levels of nesting."""


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


# --- offers, requests and tasks ------------------------------------------------------------


@dataclass(frozen=True)
class PostOffer(Op):
    """An asset's owner states the asset's kind and its standing offer (replacing any earlier
    one): without it, nobody can bind the asset to a task."""

    name: ClassVar[str] = "post_offer"
    offer: Offer


@dataclass(frozen=True)
class PostRequest(Op):
    """The signer posts a request with its terms and escrows its `max_price`."""

    name: ClassVar[str] = "post_request"
    terms: RequestTerms


@dataclass(frozen=True)
class Refund(Op):
    """The request's owner (or the operator) withdraws an open request: it closes and its
    escrow goes back to its owner. A served request closes by itself when its last task
    settles."""

    name: ClassVar[str] = "refund"
    request: str


@dataclass(frozen=True)
class OpenTasks(Op):
    """Operator: open a round's tasks, each checked against its request's terms and its
    assets' offers (`mercat.runtime.money`); charges move from escrows into holds, subsidies
    from the margin holder (`margin_to`: the operator's account or the reward pool)."""

    name: ClassVar[str] = "open_tasks"
    round: int
    tasks: tuple[TaskTerms, ...]
    margin_to: str = "operator"


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


@dataclass(frozen=True)
class TaskReports:
    """One task of a batch settlement and the reports that come with it."""

    task: str
    reports: tuple[SignedReport, ...] = ()


@dataclass(frozen=True)
class SettleTasks(Op):
    """Anyone settles many tasks of one round in one transaction, each once its quorum
    agrees. A batch whose tasks are all settled changes nothing (a resend after a crash);
    one that names a settled task among open ones is refused whole."""

    name: ClassVar[str] = "settle_tasks"
    round: int
    settlements: tuple[TaskReports, ...]


OPS: dict[str, type[Op]] = {
    op.name: op
    for op in (
        OpenAccount, AddOracle, AdvanceRound, Deposit, Withdraw, Transfer, FundPool,
        AddAsset, Stake, Unstake, Release, ReplaceAsset, PostOffer, PostRequest, Refund,
        OpenTasks, Report, Settle, SettleTasks,
    )
}  # fmt: skip


# --- field checks by name ------------------------------------------------------------------


def _ids(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise MalformedMessageError(f"{what} must be a non-empty list")
    items = tuple(check_id(v, f"{what}[{i}]") for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise MalformedMessageError(f"{what} repeat: {shown(list(items))}")
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
    return report_from_wire(value)


_REPORT_FIELDS = frozenset(
    {"oracle", "round", "task", "success", "sla_met", "latency_ms", "digest", "ledger",
     "signature"}
)  # fmt: skip


def report_from_wire(value: object) -> SignedReport:
    """`SignedReport.from_wire(value)`, faster for the plain case a batch carries thousands
    of: the oracle key is checked with a set test instead of a generator per character.
    Anything else (a missing field, a key or signature that is not plain) goes through
    `from_wire` itself, so every refusal is the reference's (a test holds them equal)."""
    if not (
        type(value) is dict
        and value.keys() == _REPORT_FIELDS
        and plain_key(value["oracle"])
        and type(value["signature"]) is str
        and len(value["signature"]) == 128
    ):
        return SignedReport.from_wire(value)
    try:
        raw = bytes.fromhex(value["signature"])
    except ValueError:
        return SignedReport.from_wire(value)
    report = OracleReport(
        round=value["round"], task=value["task"], success=value["success"],
        sla_met=value["sla_met"], latency_ms=value["latency_ms"], digest=value["digest"],
        ledger=value["ledger"],
    )  # fmt: skip
    return SignedReport(report, value["oracle"], raw)


def _bounded_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_TASKS:
        raise MalformedMessageError(f"{what} must be a list of 1 to {MAX_TASKS} entries")
    return list(value)


def _tasks(value: object, what: str) -> tuple[TaskTerms, ...]:
    return tuple(
        v if isinstance(v, TaskTerms) else TaskTerms.from_wire(v)
        for v in _bounded_list(value, what)
    )


def _settlements(value: object, what: str) -> tuple[TaskReports, ...]:
    out = []
    for i, item in enumerate(_bounded_list(value, what)):
        if isinstance(item, TaskReports):
            item = {"task": item.task, "reports": [r.to_wire() for r in item.reports]}
        if not isinstance(item, dict) or set(item) != {"task", "reports"}:
            raise MalformedMessageError(f"{what}[{i}] has exactly the fields task, reports")
        out.append(
            TaskReports(check_id(item["task"], f"{what}[{i}].task"),
                        _reports(item["reports"], f"{what}[{i}].reports"))
        )  # fmt: skip
    return tuple(out)


def _margin_to(value: object, what: str) -> str:
    if value not in MARGIN_HOLDERS:
        raise MalformedMessageError(f"{what} must be one of {', '.join(MARGIN_HOLDERS)}")
    return str(value)


def _offer(value: object, what: str) -> Offer:
    return value if isinstance(value, Offer) else Offer.from_wire(value)


def _terms(value: object, what: str) -> RequestTerms:
    return value if isinstance(value, RequestTerms) else RequestTerms.from_wire(value)


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
    "offer": _offer,
    "terms": _terms,
    "tasks": _tasks,
    "margin_to": _margin_to,
    "settlements": _settlements,
}


def _wire(value: Any) -> Any:
    if isinstance(value, SignedReport | Offer | RequestTerms | TaskTerms):
        return value.to_wire()
    if isinstance(value, TaskReports):
        return {"task": value.task, "reports": [r.to_wire() for r in value.reports]}
    if isinstance(value, tuple | list):
        return [_wire(v) for v in value]
    return value


def build(op_name: str, body: object) -> Op:
    """The operation `op_name` with fields from `body`; MalformedMessageError if anything
    is missing, extra or of the wrong kind."""
    cls = OPS.get(op_name) if isinstance(op_name, str) else None
    if cls is None:
        raise MalformedMessageError(f"unknown operation {shown(op_name)}; known: {', '.join(OPS)}")
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
    return cls(**values)


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
    """A parsed message: who asks for what, of which ledger, under which nonce, until when."""

    op: Op
    signer: str
    nonce: int
    ledger: str
    expires: int


def envelope_payload(op: Op, signer: str, nonce: int, ledger: str, expires: int) -> bytes:
    body = {f.name: _wire(getattr(op, f.name)) for f in fields(op)}  # type: ignore[arg-type]
    return canonical_bytes(
        {
            "domain": DOMAIN,
            "ledger": ledger,
            "op": op.name,
            "signer": signer,
            "nonce": nonce,
            "expires": expires,
            "body": body,
        }
    )


def check_ledger_id(value: object, what: str = "ledger") -> str:
    if (
        not isinstance(value, str)
        or len(value) != 32
        or not all(c in "0123456789abcdef" for c in value)
    ):
        raise MalformedMessageError(f"{what} must be a ledger id (32 lowercase hex digits)")
    return value


class _FloatFound(Exception):
    pass


def _float_found(_text: str) -> Any:
    raise _FloatFound


def _canonical(payload: bytes, data: Any) -> bool:
    """Whether `payload` is `canonical_bytes(data)`. The general check walks every value in
    Python to refuse floats (a third of parsing a batch of 1000 settlements); here the
    decoder finds them in C, and a payload that has one goes through `canonical_bytes`, which
    raises its error. Without floats both encode alike (a test holds them equal)."""
    try:
        json.loads(payload, parse_float=_float_found, parse_constant=_float_found)
    except _FloatFound:
        return canonical_bytes(data) == payload  # raises MalformedMessageError for the float
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return encoded.encode() == payload


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
    keys = {"domain", "ledger", "op", "signer", "nonce", "expires", "body"}
    if not isinstance(data, dict) or set(data) != keys:
        raise MalformedMessageError(f"an envelope has exactly the fields {sorted(keys)}")
    if data["domain"] != DOMAIN:
        raise MalformedMessageError(f"domain must be {DOMAIN!r}, got {shown(data['domain'])}")
    ledger = check_ledger_id(data["ledger"])
    signer = check_public_key(data["signer"], "signer")
    nonce = check_int(data["nonce"], "nonce")
    expires = check_int(data["expires"], "expires")
    op = build(data["op"], data["body"])
    if not _canonical(message.payload, data):
        raise MalformedMessageError("payload is not in canonical form")
    return Envelope(op, signer, nonce, ledger, expires)


class Signer:
    """Signs operations with one key for one ledger: `Signer(key, ledger.id).sign(op)`."""

    def __init__(self, key: Keypair, ledger: str) -> None:
        self.key = key
        self.public = key.public
        self.ledger = check_ledger_id(ledger)

    def sign(
        self,
        op: Op,
        nonce: int | None = None,
        *,
        expires: int | None = None,
        valid_for: int = DEFAULT_VALIDITY_S,
    ) -> SignedMessage:
        """Sign `op`; it stays valid until `expires` (Unix seconds), by default `valid_for`
        seconds from now."""
        if nonce is None:
            nonce = secrets.randbits(62)
        if expires is None:
            expires = int(time.time()) + valid_for
        payload = envelope_payload(op, self.public, nonce, self.ledger, expires)
        return SignedMessage(payload, self.key.sign(payload))
