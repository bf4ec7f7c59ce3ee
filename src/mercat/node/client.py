"""A small Python client of a marketplace node: what agents, oracles, requesters and the
devnet use to talk to it over HTTP.

    node = NodeClient("http://127.0.0.1:8000")
    node.submit(key, PostRequest(terms=...))          # signed for the node's ledger
    cid = node.put(data)                               # checked: the CID is recomputed here
    data = node.get(cid)                               # checked: the bytes hash to the CID
    node.tasks(assignee="gpu-1", status="open")

The node is another party, so the client trusts nothing it says that it can check: content
is re-hashed against its CID both ways, answers are bounded in size (`max_answer_bytes`)
and time (`timeout` for each read, `answer_seconds` for the whole answer, headers and body:
a node that trickles bytes cannot hold the client longer), and an error answer becomes the
`mercat.errors` class it names (a `RemoteError` when the name is not one of mercat's). A
node that is busy (429, 503 with `Retry-After`) is retried a bounded number of times,
waiting what it asks up to `max_wait` seconds; a node that cannot be reached, or whose
answer does not arrive in time, raises `NodeUnavailableError`.

Standard library only (`http.client`): one persistent connection per thread.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from mercat import errors as e
from mercat.identity import Keypair
from mercat.ledger import messages as m
from mercat.untrusted import parse_json, plain_decimal

MAX_ANSWER_BYTES = 64 << 20
MAX_PROVIDERS = 100_000  # providers `NodeClient.providers` reads, page by page
ANSWER_SECONDS = 120.0  # the whole of one answer: 64 MiB at about 0.5 MiB/s


class RemoteError(e.MercatError):
    """An error answer whose class is not one of mercat's. `status`: the HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def remote_error(status: int, body: bytes) -> e.MercatError:
    """The error a node's answer names, as its own class where mercat has it."""
    try:
        data = parse_json(body[:4096], what="the error", error=RemoteError, max_bytes=None)
        name, detail = str(data["error"]), str(data["detail"])
    except (RemoteError, KeyError, TypeError):
        return RemoteError(f"the node answered {status}: {body[:200]!r}", status)
    kind = getattr(e, name, None)
    if isinstance(kind, type) and issubclass(kind, e.MercatError):
        try:
            return kind(detail)  # type: ignore[call-arg]
        except TypeError:  # a class whose constructor takes more (UnknownNameError ...)
            pass
    return RemoteError(f"{name}: {detail}", status)


class NodeClient:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        max_wait: float = 5.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        answer_seconds: float = ANSWER_SECONDS,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise e.InvalidParameterError(f"a node URL is http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self.scheme, self.host = parsed.scheme, parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.timeout, self.retries, self.max_wait = timeout, retries, max_wait
        self.max_answer_bytes = max_answer_bytes
        if not answer_seconds > 0:  # NaN included
            raise e.InvalidParameterError(f"answer_seconds must be > 0, got {answer_seconds!r}")
        self.answer_seconds = answer_seconds
        self._local = threading.local()
        self._ledger: dict[str, Any] | None = None

    # --- transport -------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = kind(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn  # type: ignore[no-any-return]

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def close(self) -> None:
        self._drop()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        max_bytes: int | None = None,
    ) -> bytes:
        """The answer's body, or the error it names (module docstring)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        limit = self.max_answer_bytes if max_bytes is None else max_bytes
        headers = {"Content-Type": content_type} if body is not None else {}
        failures = 0
        while True:
            reused = getattr(self._local, "conn", None) is not None
            # Each attempt gets the whole of `answer_seconds`: sending, the headers and the
            # body (every socket operation waits at most what is left of it).
            deadline = time.monotonic() + self.answer_seconds
            try:
                conn = self._connection()
                left = min(self.timeout, self.answer_seconds)
                conn.timeout = left  # a new connection: connecting and sending
                if conn.sock is not None:
                    conn.sock.settimeout(left)
                conn.response_class = functools.partial(  # type: ignore[assignment]
                    _TimedResponse, deadline=deadline, timeout=self.timeout,
                    seconds=self.answer_seconds,
                )  # fmt: skip
                conn.request(method, target, body=body, headers=headers)
                reply = conn.getresponse()
                declared = reply.getheader("Content-Length")
                size = None if declared is None else plain_decimal(declared)
                if size is not None and size > limit:
                    self._drop()
                    raise e.NodeUnavailableError(
                        f"{path}: an answer of {declared} bytes is too large"
                    )
                data = reply.read(limit + 1)
                if len(data) > limit:
                    self._drop()
                    raise e.NodeUnavailableError(f"{path}: the answer exceeds {limit} bytes")
                if reply.getheader("Connection", "").lower() == "close":
                    self._drop()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if reused and isinstance(exc, ConnectionError | http.client.RemoteDisconnected):
                    continue  # the server closed an idle kept-alive connection: at once again
                failures += 1
                if failures > self.retries:
                    raise e.NodeUnavailableError(
                        f"node {self.url} cannot be reached ({type(exc).__name__}: {exc})"
                    ) from None
                time.sleep(min(self.max_wait, 0.2 * 2**failures))
                continue
            status = reply.status
            if status in (429, 503) and failures < self.retries:
                failures += 1
                wait = plain_decimal(reply.getheader("Retry-After", "1"))
                time.sleep(min(self.max_wait, 1.0 if wait is None else float(wait)))
                continue
            if status >= 400:
                raise remote_error(status, data)
            return data

    def get_json(self, path: str, **params: Any) -> Any:
        return _answer(path, self.request("GET", path, params=params))

    def post_json(self, path: str, payload: Any) -> Any:
        return _answer(path, self.request("POST", path, json.dumps(payload).encode()))

    # --- ledger ----------------------------------------------------------------------------

    def ledger_info(self, refresh: bool = False) -> dict[str, Any]:
        """`/ledger/info` (the ledger id, operator, unit, quorum; kept after the first call
        but for `round`, which `refresh` reads again)."""
        if self._ledger is None or refresh:
            self._ledger = self.get_json("/ledger/info")
        return self._ledger

    @property
    def ledger_id(self) -> str:
        return str(self.ledger_info()["ledger_id"])

    def submit(self, key: Keypair, op: m.Op, *, valid_for: int = m.DEFAULT_VALIDITY_S) -> Any:
        """Sign `op` with `key` for the node's ledger and submit it; the receipt."""
        message = m.Signer(key, self.ledger_id).sign(op, valid_for=valid_for)
        return self.post_json_text("/ledger/messages", message.to_json())

    def post_json_text(self, path: str, text: str) -> Any:
        return _answer(path, self.request("POST", path, text.encode()))

    def round(self) -> int:
        return int(self.get_json("/market/info")["round"])

    def has_account(self, public: str) -> bool:
        try:
            self.get_json(f"/ledger/balance/avail:{public}")
        except e.UnknownBookError:
            return False
        return True

    def available(self, public: str) -> int:
        return int(self.get_json(f"/ledger/balance/avail:{public}")["balance"])

    # --- storage ---------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data` on the node; its CID, recomputed here and compared with the node's."""
        from mercat.storage.content import content_cid

        expected = content_cid(data)
        stored = _answer(
            "/storage/content",
            self.request("POST", "/storage/content", data, content_type="application/octet-stream"),
        )
        cid = stored.get("cid") if isinstance(stored, dict) else None
        if cid != expected:
            raise e.ContentMismatchError(
                f"the node stored the content as {str(cid)[:80]!r}, its CID is {expected}"
            )
        return expected

    def get(self, cid: str, max_bytes: int = MAX_ANSWER_BYTES) -> bytes:
        """The content of `cid`, refused unless its bytes hash to it."""
        from mercat.storage.content import content_cid

        data = self.request("GET", f"/storage/content/{urllib.parse.quote(cid, safe='')}",
                            max_bytes=max_bytes)  # fmt: skip
        if content_cid(data) != cid:
            raise e.ContentMismatchError(f"the node's bytes for {cid} hash to another CID")
        return data

    # --- the market ------------------------------------------------------------------------

    def market_info(self) -> dict[str, Any]:
        return self.get_json("/market/info")  # type: ignore[no-any-return]

    def tasks(self, **filters: Any) -> dict[str, Any]:
        """`/market/tasks` with filters (assignee, requester, request, round, status, limit):
        {"now_ms": the node's clock, "tasks": [...]}."""
        return self.get_json("/market/tasks", **filters)  # type: ignore[no-any-return]

    def task(self, round_: int, task: str) -> dict[str, Any]:
        return self.get_json(f"/market/tasks/{round_}/{urllib.parse.quote(task)}")  # type: ignore[no-any-return]

    def claim(self, signed: Any) -> dict[str, Any]:
        return self.post_json("/market/claims", signed.to_wire())  # type: ignore[no-any-return]

    def report(self, signed: Any) -> dict[str, Any]:
        return self.post_json("/market/reports", signed.to_wire())  # type: ignore[no-any-return]

    def request_view(self, request: str) -> dict[str, Any]:
        return self.get_json(f"/market/requests/{urllib.parse.quote(request)}")  # type: ignore[no-any-return]

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get_json("/market/requests", **filters)  # type: ignore[no-any-return]

    def rounds(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.get_json("/market/rounds", limit=limit)  # type: ignore[no-any-return]

    def summary(self) -> dict[str, Any]:
        return self.get_json("/market/summary")  # type: ignore[no-any-return]

    def providers_page(
        self, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """One page of `/market/providers`: assets by id, those after `after`, at most
        `limit` (the node's largest page if None)."""
        return self.get_json("/market/providers", after=after, limit=limit)  # type: ignore[no-any-return]

    def providers(self, most: int = MAX_PROVIDERS) -> list[dict[str, Any]]:
        """Every provider, page by page (NodeUnavailableError past `most` of them, or from a
        node whose pages do not advance: the node is another party, and a list it makes up
        as it goes would otherwise be read for ever)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.providers_page(after)
            if not isinstance(page, list) or not page:
                return out
            last = page[-1].get("asset") if isinstance(page[-1], dict) else None
            if not isinstance(last, str) or (after is not None and last <= after):
                raise e.NodeUnavailableError(
                    f"the node's /market/providers pages do not advance past {after!r}"
                )
            out.extend(page)
            if len(out) > most:
                raise e.NodeUnavailableError(f"the node lists more than {most} providers")
            after = last


class _TimedResponse(http.client.HTTPResponse):
    """An answer read before `deadline` (time.monotonic), each read waiting at most
    `timeout`: TimeoutError past either."""

    def __init__(
        self, sock: socket.socket, *args: Any, deadline: float, timeout: float, seconds: float,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        timed: Any = _TimedSocket(sock, deadline, timeout, seconds)  # HTTPResponse: makefile
        super().__init__(timed, *args, **kwargs)


class _TimedSocket:
    """What HTTPResponse takes of a socket (`makefile`), with every read bounded by what is
    left before the deadline: socket timeouts alone bound each read, and a node sending one
    byte before each one ends would keep a reader for ever."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float, seconds: float):
        self.sock, self.deadline, self.timeout, self.seconds = sock, deadline, timeout, seconds

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_TimedReader(self))


class _TimedReader(io.RawIOBase):
    def __init__(self, timed: _TimedSocket) -> None:
        self.timed = timed
        # The socket's own reader: it holds the socket open while the answer is read, even
        # after the connection lets go of it (an answer that closes the connection).
        self.raw = timed.sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int | None:
        t = self.timed
        left = t.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the answer did not arrive within {t.seconds:g} s")
        t.sock.settimeout(min(t.timeout, left))
        try:
            return self.raw.readinto(buffer)
        except TimeoutError:
            if time.monotonic() >= t.deadline:
                raise TimeoutError(f"the answer did not arrive within {t.seconds:g} s") from None
            raise


def _answer(path: str, data: bytes) -> Any:
    """A JSON answer of the node (NodeUnavailableError if it is not JSON, or nested too
    deep for a parser: the node is another party)."""
    what = f"the answer to {path[:80]}"
    return parse_json(data, what=what, error=e.NodeUnavailableError, max_bytes=None)


def wait_until_up(url: str, timeout: float = 60.0, process: Any = None) -> None:
    """Poll `url`/health until the node answers (NodeUnavailableError after `timeout`, or
    as soon as `process`, the node's process if we started it, has exited)."""
    client = NodeClient(url, timeout=2.0, retries=0, answer_seconds=5.0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get_json("/health")
            client.close()
            return
        except (TimeoutError, e.NodeUnavailableError, RemoteError):
            pass
        if process is not None and process.poll() is not None:
            raise e.NodeUnavailableError(f"the node exited (code {process.returncode})")
        if time.monotonic() > deadline:
            raise e.NodeUnavailableError(f"node {url} did not answer within {timeout:g} s")
        time.sleep(0.1)
