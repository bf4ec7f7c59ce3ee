"""What a provider says it did with a task: a signed outcome claim.

A provider agent that ran one replica of a task (one of the task's servers) signs a claim:
the task by (round, task id), the server that ran it, success or not, the output's CID (the
result it stored), the run's own measured time, and a short error text on failure. The claim
is bound to one ledger (its id is in the signed payload, under its own domain tag, so it can
never pass for a ledger message or an oracle report) and signed with the server owner's key.

The node keeps claims on its task board (`mercat.node.board`) with the time it received
them; oracles read them, check them (the output in the store, hashing to its CID; replicas
agreeing; on a sample of tasks, re-execution) and report. A claim is evidence, not a
verdict: only the oracles' quorum settles a task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mercat.errors import MalformedMessageError
from mercat.identity import Keypair, canonical_bytes, check_public_key, verify
from mercat.oracle.report import check_bool, check_id, check_int

DOMAIN = "mercat/outcome-claim/1"
_CID = re.compile(r"[A-Za-z0-9]{1,128}")
_LEDGER = re.compile(r"[0-9a-f]{32}")
_ERROR = re.compile(r"[\x20-\x7e]{0,200}")
FIELDS = ("ledger", "round", "task", "asset", "success", "output", "run_ms", "error")


@dataclass(frozen=True)
class OutcomeClaim:
    """One replica's outcome, as its provider claims it (module docstring)."""

    ledger: str
    round: int
    task: str
    asset: str
    success: bool
    output: str | None = None  # the output's CID
    run_ms: int = 0  # the workload's own running time, as the provider measured it
    error: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ledger, str) or not _LEDGER.fullmatch(self.ledger):
            raise MalformedMessageError("claim.ledger must be a ledger id (32 hex digits)")
        check_int(self.round, "claim.round")
        check_id(self.task, "claim.task")
        check_id(self.asset, "claim.asset")
        check_bool(self.success, "claim.success")
        check_int(self.run_ms, "claim.run_ms")
        if self.output is not None and (
            not isinstance(self.output, str) or not _CID.fullmatch(self.output)
        ):
            raise MalformedMessageError("claim.output must be a CID (letters and digits)")
        if self.success and self.output is None:
            raise MalformedMessageError("a successful claim names its output's CID")
        if not isinstance(self.error, str) or not _ERROR.fullmatch(self.error):
            raise MalformedMessageError("claim.error is up to 200 printable characters")

    def payload(self, owner: str) -> bytes:
        return canonical_bytes({"domain": DOMAIN, "owner": owner, **self._fields()})

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class SignedClaim:
    claim: OutcomeClaim
    owner: str
    signature: bytes

    @classmethod
    def sign(cls, claim: OutcomeClaim, key: Keypair) -> SignedClaim:
        return cls(claim, key.public, key.sign(claim.payload(key.public)))

    def verify(self) -> None:
        """BadSignatureError unless `owner` signed this claim."""
        verify(self.owner, self.claim.payload(self.owner), self.signature)

    def to_wire(self) -> dict[str, Any]:
        return {**self.claim._fields(), "owner": self.owner, "signature": self.signature.hex()}

    @classmethod
    def from_wire(cls, data: object) -> SignedClaim:
        """Parse the wire form (MalformedMessageError on any deviation; the signature is
        not checked here: `verify`)."""
        expected = {*FIELDS, "owner", "signature"}
        if not isinstance(data, dict) or set(data) != expected:
            raise MalformedMessageError(f"a claim has exactly the fields {sorted(expected)}")
        signature = data["signature"]
        if not isinstance(signature, str) or not re.fullmatch(r"[0-9a-f]{128}", signature):
            raise MalformedMessageError("claim.signature must be 128 lowercase hex digits")
        claim = OutcomeClaim(**{name: data[name] for name in FIELDS})
        return cls(claim, check_public_key(data["owner"], "claim.owner"), bytes.fromhex(signature))
