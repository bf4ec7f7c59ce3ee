"""Content kept in an IPFS daemon: a `BlockContent` over kubo's HTTP RPC API (seed 002, §III.B:
"IPFS to decentralize file storage").

mercat builds the UnixFS DAG itself, exactly as `ipfs add --cid-version 1 --raw-leaves` would,
and hands the daemon its blocks one by one with `/api/v0/block/put`; reading fetches them with
`/api/v0/block/get` and checks every block against its CID here, so a daemon (or the network
behind it) cannot substitute content. The root of each put is stored with `pin=true`, which
pins the whole DAG recursively, so kubo's garbage collector keeps it. The daemon then serves
the content to any IPFS peer (`ipfs cat CID`, a gateway's `/ipfs/CID`).

The daemon is trusted with nothing but availability, and treated as hostile input: every
request has a time limit, a block's answer is read to at most `MAX_BLOCK_BYTES`, an error body
to at most 64 KiB, and one connection is opened per request (no pool, no background thread).
Only the standard library's HTTP client is used.

kubo's RPC API grants admin rights over the daemon: point this at a daemon on loopback (its
default, 127.0.0.1:5001) or behind an authenticating proxy, never at a public address.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
import uuid
from urllib.parse import urlencode, urlsplit

from mercat.errors import (
    ContentCorruptedError,
    ContentNotFoundError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import parse
from mercat.storage.content import (
    DEFAULT_CHUNK_SIZE,
    BlockContent,
    BlockWriter,
    check_block,
    check_layout,
)
from mercat.storage.unixfs import DEFAULT_MAX_LINKS

DEFAULT_API = "http://127.0.0.1:5001"
MAX_BLOCK_BYTES = 1 << 20  # kubo's own limit for a block peers exchange (block put refuses more)
MAX_ERROR_BYTES = 64 << 10


class _KuboWriter(BlockWriter):
    def __init__(self, store: KuboStore) -> None:
        self.store = store

    def block(self, cid: str, data: bytes) -> None:
        self.store._put(cid, data, pin=False)

    def root(self, cid: str, data: bytes) -> None:
        self.store._put(cid, data, pin=True)  # pins the DAG under it, recursively


class KuboStore(BlockContent):
    def __init__(
        self,
        api: str = DEFAULT_API,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_links: int = DEFAULT_MAX_LINKS,
        timeout: float = 30.0,
    ) -> None:
        """A store in the kubo daemon whose RPC API listens at `api` (http or https URL).
        `timeout` (seconds) bounds each request: each socket operation, and reading the
        answer as a whole."""
        self.chunk_size, self.max_links = check_layout(chunk_size, max_links)
        if self.chunk_size > MAX_BLOCK_BYTES:
            raise InvalidParameterError(
                f"chunk size {self.chunk_size} is above {MAX_BLOCK_BYTES}, the largest block "
                "IPFS peers exchange"
            )
        parts = urlsplit(api) if isinstance(api, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(f"the IPFS API must be an http(s) URL, got {api!r}")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise InvalidParameterError(f"the IPFS API is a bare http(s)://host:port, got {api!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidParameterError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.api = f"{parts.scheme}://{parts.netloc}"
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname, parts.port
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"KuboStore({self.api!r})"

    # --- the RPC call ----------------------------------------------------------------------

    def _call(
        self,
        command: str,
        params: dict[str, str],
        limit: int,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """POST /api/v0/COMMAND (kubo's RPC takes POST only); the answer's body, read to at
        most `limit` bytes, or StorageError naming the daemon and its reason."""
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self.timeout)
        headers = {"Content-Type": content_type} if content_type else {}
        target = f"/api/v0/{command}?{urlencode(params)}"
        deadline = time.monotonic() + self.timeout
        try:
            connection.request("POST", target, body=body or b"", headers=headers)
            response = connection.getresponse()
            status = response.status
            parts, size = [], 0
            while size <= limit:  # in pieces, so a trickling answer meets the deadline too
                piece = response.read(min(1 << 16, limit + 1 - size))
                if not piece:
                    break
                parts.append(piece)
                size += len(piece)
                if time.monotonic() > deadline:
                    raise TimeoutError
            data = b"".join(parts)
        except (OSError, http.client.HTTPException) as exc:
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else exc
            raise StorageError(f"IPFS daemon at {self.api}: {command} failed: {reason}") from None
        finally:
            connection.close()
        if status != 200:
            raise StorageError(
                f"IPFS daemon at {self.api} refused {command}: {_reason(data[:MAX_ERROR_BYTES])}"
            )
        if len(data) > limit:
            raise StorageError(
                f"IPFS daemon at {self.api} answered {command} with more than {limit} bytes"
            )
        return data

    # --- blocks ----------------------------------------------------------------------------

    def _put(self, cid: str, data: bytes, pin: bool) -> None:
        canonical, codec, _ = parse(cid)
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="block"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        params = {"cid-codec": codec, "mhtype": "sha2-256", "pin": "true" if pin else "false"}
        answer = self._call(
            "block/put", params, MAX_ERROR_BYTES, body, f"multipart/form-data; boundary={boundary}"
        )
        try:
            key = json.loads(answer)["Key"]
            stored = parse(key)[0]
        except (ValueError, KeyError, TypeError, StorageError):
            raise StorageError(
                f"IPFS daemon at {self.api} answered block/put with {answer[:200]!r}"
            ) from None
        if stored != canonical:
            raise StorageError(
                f"IPFS daemon at {self.api} stored block {canonical} as {stored}; refusing it"
            )

    def put_block(self, cid: str, data: bytes) -> None:
        """Hand the daemon a block received from elsewhere, after `check_block`."""
        canonical, _, _ = check_block(cid, data)
        if len(data) > MAX_BLOCK_BYTES:
            raise InvalidParameterError(
                f"block {canonical} is {len(data)} bytes, above the {MAX_BLOCK_BYTES} IPFS allows"
            )
        self._put(canonical, data, pin=False)

    def read_block(self, cid: str) -> bytes:
        canonical, _, digest = parse(cid)
        try:
            data = self._call("block/get", {"arg": canonical}, MAX_BLOCK_BYTES)
        except StorageError as exc:
            if _not_found(exc):
                raise ContentNotFoundError(f"the IPFS daemon holds no block {canonical}") from None
            raise
        if hashlib.sha256(data).digest() != digest:
            raise ContentCorruptedError(
                f"the IPFS daemon at {self.api} returned bytes for {canonical} that do not hash "
                "to it; refusing them"
            )
        return data

    def has_block(self, cid: str) -> bool:
        canonical, _, _ = parse(cid)
        try:
            self._call("block/stat", {"arg": canonical}, MAX_ERROR_BYTES)
        except StorageError as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def _writer(self) -> BlockWriter:
        return _KuboWriter(self)


def _reason(body: bytes) -> str:
    """kubo's error message from an error body ({"Message": ..., "Code": ..., "Type": "error"})."""
    try:
        message = json.loads(body)["Message"]
        if isinstance(message, str):
            return message[:500]
    except (ValueError, KeyError, TypeError):
        pass
    return repr(body[:200])


def _not_found(exc: StorageError) -> bool:
    """Whether kubo's refusal says it lacks the block ("block was not found locally",
    "ipld: could not find ...")."""
    text = str(exc)
    return "not found" in text or "could not find" in text
