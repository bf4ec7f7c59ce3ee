"""Checking a batch's report signatures in a second process, beside the transaction.

Threads (`mercat.ledger.report_signatures.ReportCheck`) overlap the settlement only in part:
every Ed25519 check needs the GIL for a moment before and after libsodium's call, and while
the settling thread runs Python a checking thread gets it only at the interpreter's switch
interval (5 ms), so most checks wait for the transaction's SQL or its end. A process has its
own interpreter: it checks while the settling thread computes, on another core when there
is one.

The worker is this file run as a script (`python report_worker.py`): it imports only the
standard library and PyNaCl, never mercat (which would take it a second to import). The
parent writes one frame per batch on its stdin and reads one answer from its stdout:

- frame: `count` and the body's length in bytes (u32 each), then the body: per report its
  32-byte public key, 64-byte signature, payload length (u16) and the signed payload (what
  `report_signatures.report_payload` writes). The worker reads a body at once, so the
  parent's write is a copy into the pipe, not a wait on the worker's parsing;
- answer: the position of the first report (in frame order) whose signature does not
  verify, or 2^32 - 1 when every one does (u32). The parent then has the reference,
  `SignedReport.verify`, raise its exact error for that report.

Nothing here is a network input: the frames are the parent's own, built from reports the
message parser already bounded (at most `MAX_TASKS` tasks per batch, a few reports each).
The worker is started once per process, on the first large batch, and checks no batch until
it has said it is ready (a batch meanwhile takes the threads). It is shared by the process's
ledgers one batch at a time; a batch that finds it busy takes the threads. It exits when its
stdin closes (the parent's exit) and is replaced if it dies.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

ALL_VALID = 0xFFFFFFFF
READY = b"R"
_COUNT = struct.Struct("<I")
_HEADER = struct.Struct("<II")  # count, body bytes
_LENGTH = struct.Struct("<H")
KEY_BYTES, SIGNATURE_BYTES = 32, 64


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """`size` bytes, or None at the end of the stream."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def encode(items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """One frame of (public key, signature, payload) triples."""
    parts = []
    for key, signature, payload in items:
        parts += (key, signature, _LENGTH.pack(len(payload)), payload)
    body = b"".join(parts)
    return _HEADER.pack(len(items), len(body)) + body


def first_invalid(stream: BinaryIO) -> int | None:
    """Read one frame from `stream` and check it in order: the position of the first report
    whose signature fails, `ALL_VALID`, or None at the end of the stream (or a frame that
    does not add up)."""
    import nacl.exceptions
    import nacl.signing

    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    count, size = _HEADER.unpack(header)
    body = _read_exact(stream, size)
    if body is None:
        return None
    keys: dict[bytes, nacl.signing.VerifyKey] = {}
    at = 0
    for position in range(count):
        end = at + KEY_BYTES + SIGNATURE_BYTES + _LENGTH.size
        if end > size:
            return None
        (length,) = _LENGTH.unpack_from(body, end - _LENGTH.size)
        key_bytes = body[at : at + KEY_BYTES]
        signature = body[at + KEY_BYTES : at + KEY_BYTES + SIGNATURE_BYTES]
        payload = body[end : end + length]
        if len(payload) != length:
            return None
        at = end + length
        key = keys.get(key_bytes)
        if key is None:
            key = keys[key_bytes] = nacl.signing.VerifyKey(key_bytes)
        try:
            key.verify(payload, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return position
    return ALL_VALID


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """The worker's loop: say ready, then answer each frame until `reader` ends."""
    import nacl.signing  # noqa: F401 - imported before saying ready

    writer.write(READY)
    writer.flush()
    while True:
        answer = first_invalid(reader)
        if answer is None:
            return
        writer.write(_COUNT.pack(answer))
        writer.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
