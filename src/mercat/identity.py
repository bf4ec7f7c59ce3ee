"""Keys and signatures: who may change the ledger and who attests a task.

mercat signs with Ed25519 (PyNaCl, libsodium), not with Ethereum's secp256k1 keys:

- verification is fast and constant-time (about 60 µs here), and the ledger verifies
  every message inside its write path;
- a public key is 32 bytes and *is* the identity: no address derivation and no
  signature malleability or public-key recovery to get wrong;
- signatures are deterministic, so a replayed message is byte-identical and the nonce
  check (not the signature) is what rejects it.

The chain part (src/mercat/chain/) speaks Ethereum's keys to its contracts; the off-chain
ledger and the oracles need only authentication of messages, which Ed25519 gives simply.

A signature covers the *canonical encoding* of a payload: JSON with sorted keys, no
whitespace, integers and strings only (floats are refused, so that no amount can be
ambiguous). Identities travel as lowercase hex of the 32-byte public key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from mercat.errors import BadSignatureError, InvalidParameterError, MalformedMessageError
from mercat.untrusted import shown

PUBLIC_KEY_HEX_LEN = 64
SIGNATURE_LEN = 64


def canonical_bytes(payload: Any) -> bytes:
    """The exact bytes that are signed: sorted-key compact JSON of ints, strings, lists."""
    _check_canonical(payload, "payload")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_canonical(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return
    if isinstance(value, float):
        raise MalformedMessageError(f"{where} is a float ({value!r}); amounts are integers")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_canonical(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedMessageError(f"{where} has a non-string key {key!r}")
            _check_canonical(item, f"{where}.{key}")
        return
    raise MalformedMessageError(f"{where} has a value of type {type(value).__name__}")


def check_public_key(value: object, what: str = "public key") -> str:
    """A public key as 64 lowercase hex digits; raises MalformedMessageError otherwise."""
    if (
        not isinstance(value, str)
        or len(value) != PUBLIC_KEY_HEX_LEN
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise MalformedMessageError(f"{what} must be 64 lowercase hex digits, got {shown(value)}")
    return value


def verify(public_key: str, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature; raises BadSignatureError (never returns False)."""
    check_public_key(public_key)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        raise MalformedMessageError(f"a signature is {SIGNATURE_LEN} bytes")
    try:
        nacl.signing.VerifyKey(bytes.fromhex(public_key)).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise BadSignatureError(f"signature does not verify for key {public_key[:16]}…") from exc


@dataclass(frozen=True, repr=False)
class Keypair:
    """An Ed25519 signing key. `public` (hex) is the identity others see."""

    seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise MalformedMessageError("an Ed25519 seed is 32 bytes")
        object.__setattr__(self, "_key", nacl.signing.SigningKey(self.seed))

    def __repr__(self) -> str:  # never print the secret
        return f"Keypair(public={self.public[:16]}…)"

    @classmethod
    def generate(cls) -> Keypair:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_hex(cls, seed_hex: str) -> Keypair:
        try:
            return cls(bytes.fromhex(seed_hex.strip()))
        except ValueError as exc:
            raise MalformedMessageError("a key file holds 64 hex digits (the seed)") from exc

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> Keypair:
        """The key in a key file (64 hex digits, the seed); InvalidParameterError naming
        the file if it cannot be read or does not hold a key."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError:
            raise InvalidParameterError(f"key file {path} does not exist") from None
        except OSError as exc:
            raise InvalidParameterError(f"key file {path} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidParameterError(f"key file {path} holds binary data, not hex") from None
        try:
            return cls.from_hex(text)
        except MalformedMessageError as exc:
            raise InvalidParameterError(f"key file {path}: {exc}") from None

    @property
    def public(self) -> str:
        return self._key.verify_key.encode().hex()  # type: ignore[attr-defined]

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature  # type: ignore[attr-defined]
