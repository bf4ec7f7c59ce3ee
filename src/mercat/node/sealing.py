"""Sealed requests: inputs only the assigned providers can read, outputs only the requester
and those providers can read (seed 002's "encryption ... to guarantee privacy and security
of sensitive datasets", with its §III.B storage, where every peer holds every block).

A request's terms say what is sealed (`RequestTerms.sealed`: "inputs", "output"). The keys:

- the **inputs key** encrypts every input the requester uploads for the request
  (`mercat.storage.encryption`'s secretstream; each upload starts from its own random
  header, so one key serves them all). The node, its store and every peer hold ciphertext.
- the **output key** encrypts the output each replica stores, deterministically
  (`encrypt_deterministic`): replicas that computed the same bytes store the same ciphertext,
  so the oracles compare them by CID as they compare outputs in the clear.

Both are derived from the requester's identity seed and the request's id (keyed BLAKE2b,
one personalization per key), so the requester's client keeps no key file: the identity it
signs with brings them back, in another process or after a restart.

**Who seals, and when.** The requester does: only it holds the keys, and only once a round
has opened a task does anyone know which providers run it. Its client watches the request
(`Requester.hand_over_keys`, called by `watch`, `submit --wait` and the devnet's load); for
each server of an open task it seals both keys to that server owner's Ed25519 identity
(`seal_key`: a sealed box to the X25519 key derived from it) and posts a `KeyGrant` signed
with its own key (`POST /market/keys`). The node checks it (the requester of that task, a
server of it, its owner as the recipient, one box per sealed part, each 80 bytes) and only
relays it (`GET /market/tasks/{round}/{task}/keys`): it never holds a key in the clear, and
neither does any other provider (a box opens only for its recipient). The agent checks the
grant's signature itself, so a node cannot hand it keys (and content) of its own choosing.

The price of this choice: a requester that is offline when its task opens leaves its
providers without keys; they claim a failure at the deadline ("no key was granted"), the
task fails its SLA and the requester's escrow comes back, while the collective rule
charges each asset of the failed task its penalty P as for any failure (seed 000 blames
nobody). Sealing the keys at submission time instead would need to know the providers in
advance, or hand the keys to all of them.

What the oracles cannot do on a sealed task (`mercat.node.oracle_service`): re-execute it
(they hold no key; sealing to the oracle quorum too would let any oracle read the data,
which is what sealing is for), or check a sealed output's kind; they still check every
output by CID, that replicas agree, and the SLA.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from mercat import errors as e
from mercat.identity import Keypair, canonical_bytes, check_public_key, verify
from mercat.oracle.report import check_id, check_int
from mercat.storage.encryption import SEALED_KEY_BYTES, open_sealed, seal_key

DOMAIN = "mercat/key-grant/1"
FIELDS = ("ledger", "round", "task", "asset", "recipient", "inputs_key", "output_key")
MAX_GRANT_BYTES = 4096  # a grant's wire form is under 1 KiB; the node refuses more unread
_LEDGER = re.compile(r"[0-9a-f]{32}")
_SEALED_HEX = re.compile(rf"[0-9a-f]{{{2 * SEALED_KEY_BYTES}}}")
_PERSON = {"inputs": b"mercat-inputs", "output": b"mercat-output"}


@dataclass(frozen=True)
class RequestKeys:
    """A sealed request's keys (module docstring)."""

    inputs: bytes
    output: bytes


def request_keys(requester: Keypair, request: str) -> RequestKeys:
    """The keys of the requester's request `request` (the same every time)."""
    check_id(request, "request")
    derive = lambda part: hashlib.blake2b(  # noqa: E731
        request.encode(), key=requester.seed, digest_size=32, person=_PERSON[part]
    ).digest()
    return RequestKeys(derive("inputs"), derive("output"))


def _sealed(value: object, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes) and len(value) == SEALED_KEY_BYTES:
        return value
    if isinstance(value, str) and _SEALED_HEX.fullmatch(value):
        return bytes.fromhex(value)
    raise e.MalformedMessageError(
        f"{what} must be a sealed key: {SEALED_KEY_BYTES} bytes ({2 * SEALED_KEY_BYTES} "
        "lowercase hex digits), or null"
    )


@dataclass(frozen=True)
class KeyGrant:
    """A sealed request's keys, sealed to the owner of one server of one task."""

    ledger: str
    round: int
    task: str
    asset: str  # the server that runs the replica
    recipient: str  # its owner's public key: the only key the boxes open with
    inputs_key: bytes | None
    output_key: bytes | None

    def __post_init__(self) -> None:
        if not isinstance(self.ledger, str) or not _LEDGER.fullmatch(self.ledger):
            raise e.MalformedMessageError("grant.ledger must be a ledger id (32 hex digits)")
        check_int(self.round, "grant.round")
        check_id(self.task, "grant.task")
        check_id(self.asset, "grant.asset")
        check_public_key(self.recipient, "grant.recipient")
        object.__setattr__(self, "inputs_key", _sealed(self.inputs_key, "grant.inputs_key"))
        object.__setattr__(self, "output_key", _sealed(self.output_key, "grant.output_key"))
        if self.inputs_key is None and self.output_key is None:
            raise e.MalformedMessageError("a grant seals at least one key")

    def sealed_parts(self) -> frozenset[str]:
        return frozenset(
            part
            for part, box in (("inputs", self.inputs_key), ("output", self.output_key))
            if box is not None
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger, "round": self.round, "task": self.task, "asset": self.asset,
            "recipient": self.recipient,
            "inputs_key": None if self.inputs_key is None else self.inputs_key.hex(),
            "output_key": None if self.output_key is None else self.output_key.hex(),
        }  # fmt: skip

    def payload(self, requester: str) -> bytes:
        return canonical_bytes({"domain": DOMAIN, "requester": requester, **self._fields()})


@dataclass(frozen=True)
class SignedGrant:
    grant: KeyGrant
    requester: str
    signature: bytes

    @classmethod
    def sign(cls, grant: KeyGrant, key: Keypair) -> SignedGrant:
        return cls(grant, key.public, key.sign(grant.payload(key.public)))

    def verify(self) -> None:
        """BadSignatureError unless `requester` signed this grant."""
        verify(self.requester, self.grant.payload(self.requester), self.signature)

    def to_wire(self) -> dict[str, Any]:
        return {**self.grant._fields(), "requester": self.requester,
                "signature": self.signature.hex()}  # fmt: skip

    @classmethod
    def from_wire(cls, data: object) -> SignedGrant:
        """Parse the wire form (MalformedMessageError on any deviation; the signature is
        not checked here: `verify`)."""
        expected = {*FIELDS, "requester", "signature"}
        if not isinstance(data, dict) or set(data) != expected:
            raise e.MalformedMessageError(f"a key grant has exactly the fields {sorted(expected)}")
        signature = data["signature"]
        if not isinstance(signature, str) or not re.fullmatch(r"[0-9a-f]{128}", signature):
            raise e.MalformedMessageError("grant.signature must be 128 lowercase hex digits")
        grant = KeyGrant(**{name: data[name] for name in FIELDS})
        requester = check_public_key(data["requester"], "grant.requester")
        return cls(grant, requester, bytes.fromhex(signature))


def grant_for(
    requester: Keypair, ledger: str, task: dict[str, Any], asset: str, sealed: frozenset[str]
) -> SignedGrant:
    """The requester's signed grant of its request's keys to the owner of `asset`, a server
    of `task` (a task view from the node)."""
    server = next((a for a in task["assets"] if a["asset"] == asset), None)
    if server is None or server["kind"] != "server":
        raise e.InvalidParameterError(f"{asset!r} is not a server of task {task['task']!r}")
    keys = request_keys(requester, task["request"])
    owner = server["owner"]
    grant = KeyGrant(
        ledger, task["round"], task["task"], asset, owner,
        seal_key(keys.inputs, owner) if "inputs" in sealed else None,
        seal_key(keys.output, owner) if "output" in sealed else None,
    )  # fmt: skip
    return SignedGrant.sign(grant, requester)


@dataclass(frozen=True)
class OpenedKeys:
    """What a provider holds once it opened its grant."""

    inputs: bytes | None
    output: bytes | None


def open_grant(signed: SignedGrant, task: dict[str, Any], provider: Keypair) -> OpenedKeys:
    """The keys in a grant the node relayed, after checking that the task's requester
    signed it, for this task and for this provider; `DecryptionError` if a box does not
    open with the provider's key, `UnauthorizedError` if the grant is not the requester's."""
    g = signed.grant
    if signed.requester != task["requester"]:
        raise e.UnauthorizedError(f"the key grant for task {task['task']!r} is not its requester's")
    signed.verify()
    if (g.round, g.task) != (task["round"], task["task"]) or g.recipient != provider.public:
        raise e.UnauthorizedError(f"the key grant is for another task or provider, not {g.task!r}")
    return OpenedKeys(
        None if g.inputs_key is None else open_sealed(g.inputs_key, provider),
        None if g.output_key is None else open_sealed(g.output_key, provider),
    )
