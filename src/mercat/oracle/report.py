"""Signed oracle reports: what one oracle saw of one task.

A report names the task by its (round, task) id and states whether the task succeeded,
whether it met its SLA, the latency the oracle measured (integer milliseconds: signed
payloads carry no floats) and, optionally, a digest of the result (a content id, so that
oracles that agree on success also agree on *what* was computed).

The oracle signs the canonical encoding of the report with its Ed25519 key; the payload
carries a domain tag, so that a report signature can never pass for a ledger message, and
the id of the ledger the task lives on (`ledger`), so that a report for task (r, t) of one
ledger can never settle task (r, t) of another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mercat.errors import MalformedMessageError
from mercat.identity import Keypair, canonical_bytes, check_public_key, verify
from mercat.untrusted import shown

DOMAIN = "mercat/oracle-report/2"
MAX_INT = 2**62
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DIGEST = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_LEDGER = re.compile(r"[0-9a-f]{32}")


def check_id(value: object, what: str) -> str:
    """An asset, request or task id: 1-64 characters of letters, digits, `_`, `.`, `-`."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise MalformedMessageError(f"{what} must be 1-64 of [A-Za-z0-9_.-], got {shown(value)}")
    return value


def check_int(value: object, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value < MAX_INT:
        raise MalformedMessageError(
            f"{what} must be an integer in [{minimum}, 2^62), got {shown(value)}"
        )
    return value


def check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise MalformedMessageError(f"{what} must be true or false, got {shown(value)}")
    return value


@dataclass(frozen=True)
class OracleReport:
    """One oracle's verdict on one task (unsigned)."""

    round: int
    task: str
    success: bool
    sla_met: bool
    latency_ms: int
    digest: str | None = None
    ledger: str = ""

    def __post_init__(self) -> None:
        if self.ledger != "" and not _LEDGER.fullmatch(str(self.ledger)):
            raise MalformedMessageError("ledger must be a ledger id (32 lowercase hex digits)")
        check_int(self.round, "round")
        check_id(self.task, "task")
        check_bool(self.success, "success")
        check_bool(self.sla_met, "sla_met")
        check_int(self.latency_ms, "latency_ms")
        if self.digest is not None and (
            not isinstance(self.digest, str) or not _DIGEST.fullmatch(self.digest)
        ):
            raise MalformedMessageError(
                f"digest must be 1-128 plain characters, got {shown(self.digest)}"
            )

    @property
    def verdict(self) -> tuple[bool, bool, str | None]:
        """What oracles must agree on: success, SLA verdict and result digest (not latency,
        which each oracle measures for itself)."""
        return (self.success, self.sla_met, self.digest)

    def signed_payload(self, oracle: str) -> bytes:
        return canonical_bytes(
            {
                "domain": DOMAIN,
                "ledger": self.ledger,
                "oracle": oracle,
                "round": self.round,
                "task": self.task,
                "success": self.success,
                "sla_met": self.sla_met,
                "latency_ms": self.latency_ms,
                "digest": self.digest,
            }
        )


@dataclass(frozen=True)
class SignedReport:
    """A report with the oracle's public key and signature."""

    report: OracleReport
    oracle: str
    signature: bytes

    @classmethod
    def sign(cls, report: OracleReport, key: Keypair) -> SignedReport:
        return cls(report, key.public, key.sign(report.signed_payload(key.public)))

    def verify(self) -> None:
        """Raise BadSignatureError unless `oracle` signed this report."""
        verify(self.oracle, self.report.signed_payload(self.oracle), self.signature)

    def to_wire(self) -> dict[str, Any]:
        r = self.report
        return {
            "oracle": self.oracle,
            "round": r.round,
            "task": r.task,
            "success": r.success,
            "sla_met": r.sla_met,
            "latency_ms": r.latency_ms,
            "digest": r.digest,
            "ledger": r.ledger,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_wire(cls, data: object) -> SignedReport:
        """Parse the wire form; MalformedMessageError on any deviation (signature unchecked)."""
        expected = {"oracle", "round", "task", "success", "sla_met", "latency_ms", "digest",
                    "ledger", "signature"}  # fmt: skip
        if not isinstance(data, dict) or set(data) != expected:
            raise MalformedMessageError(
                f"an oracle report has exactly the fields {sorted(expected)}"
            )
        signature = data["signature"]
        if not isinstance(signature, str) or len(signature) != 128:
            raise MalformedMessageError("report signature must be 128 hex digits")
        try:
            raw = bytes.fromhex(signature)
        except ValueError as exc:
            raise MalformedMessageError("report signature must be hex") from exc
        report = OracleReport(
            round=data["round"],
            task=data["task"],
            success=data["success"],
            sla_met=data["sla_met"],
            latency_ms=data["latency_ms"],
            digest=data["digest"],
            ledger=data["ledger"],
        )
        return cls(report, check_public_key(data["oracle"], "oracle"), raw)
