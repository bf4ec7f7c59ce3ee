"""Reading a participant's key: a key file (64 hex digits, the Ed25519 seed) or `-`, one line
of standard input, so that a launcher (the devnet) hands a child its key through a pipe and
no key ever touches the disk."""

from __future__ import annotations

import sys
from pathlib import Path

from mercat.errors import InvalidParameterError, MalformedMessageError
from mercat.identity import Keypair

MAX_LINE = 256  # the 64 hex digits and some spaces: no more is read from stdin


def read_key(path: Path, what: str = "--key") -> Keypair:
    if str(path) == "-":
        line = sys.stdin.readline(MAX_LINE)
        try:
            return Keypair.from_hex(line)
        except MalformedMessageError:
            raise InvalidParameterError(
                f"{what} -: standard input must hold one line of 64 hex digits (the seed)"
            ) from None
    return Keypair.from_file(path)


def read_secret(path: Path | None, what: str = "--sample-secret") -> bytes | None:
    """A shared secret (hex) from a file or the next line of stdin (`-`); None: none."""
    if path is None:
        return None
    text = sys.stdin.readline(MAX_LINE) if str(path) == "-" else _read(path, what)
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidParameterError(f"{what} must hold hex digits") from None
    if len(secret) < 16:
        raise InvalidParameterError(f"{what} must hold at least 16 bytes (32 hex digits)")
    return secret


def _read(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"{what} {path} cannot be read: {exc}") from None
