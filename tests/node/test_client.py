"""The node's client against a node that answers what no node should: headers that are not
numbers, bodies that are not JSON or nest past any parser, answers trickled a byte at a
time. Each becomes one of mercat's errors (what agents, oracles and requesters catch), never
a ValueError, a RecursionError or a wait without end."""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mercat import errors as e
from mercat.node.client import NodeClient, RemoteError

# path -> (status, headers, body); every answer closes its connection
ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    # Latin-1 "²": str.isdigit() says yes, int() says no
    "/odd-length": (200, {"Content-Length": "\u00b2"}, b"{}"),
    "/odd-retry": (503, {"Retry-After": "\u00b2", "Content-Length": "2"}, b"{}"),
    "/not-json": (200, {}, b"<html>hello</html>"),
    "/too-deep": (200, {}, b"[" * 5000),
    "/too-deep-error": (500, {}, b"[" * 5000),
    "/store-answer": (200, {}, b"[1, 2]"),
}


class _Hostile(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = "/store-answer" if self.path == "/storage/content" else self.path
        status, headers, body = ANSWERS[path]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)  # written as Latin-1
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[NodeClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = NodeClient(f"http://127.0.0.1:{server.server_address[1]}", retries=1, max_wait=0.0)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def python_recursion_limit():
    """Python's own recursion limit, as in an agent's process (a test plugin raises it to
    100 000, past the depth of any answer the client reads)."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def test_a_content_length_that_is_no_plain_number_is_not_taken_for_one(node):
    assert node.get_json("/odd-length") == {}


def test_a_retry_after_that_is_no_plain_number_waits_the_default(node):
    with pytest.raises(RemoteError) as refused:  # retried once, then the 503 itself
        node.get_json("/odd-retry")
    assert refused.value.status == 503


@pytest.mark.parametrize("path", ["/not-json", "/too-deep"])
def test_an_answer_that_is_not_the_nodes_json_is_node_unavailable(
    node, path, python_recursion_limit
):
    with pytest.raises(e.NodeUnavailableError, match="answer to"):
        node.get_json(path)


def test_an_error_answer_nested_too_deep_is_a_remote_error(node, python_recursion_limit):
    with pytest.raises(RemoteError) as refused:
        node.get_json("/too-deep-error")
    assert refused.value.status == 500


def test_a_store_answer_without_a_cid_is_a_mismatch(node):
    with pytest.raises(e.ContentMismatchError):
        node.put(b"some content")


class _Trickler:
    """A server that answers every connection with `head` and then one byte of `drip` every
    50 ms for as long as the test runs: each read gets data long before the client's
    per-read timeout, and the answer never ends."""

    def __init__(self, head: bytes, drip: bytes) -> None:
        self.head, self.drip = head, drip
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # so that the accepting thread sees `stop`
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed: the test is over
                return
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request (small, in one piece from the client)
                conn.sendall(self.head)
                while not self.stop.wait(0.05):
                    conn.sendall(self.drip)
            except OSError:  # the client gave up and closed its end
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(10)


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"["),  # a body
        (b"HTTP/1.1 200 OK\r\n", b"X-Pad: x\r\n"),  # headers that never end
    ],
    ids=["body", "headers"],
)
def test_an_answer_that_never_ends_is_cut_at_the_answer_deadline(head, drip):
    server = _Trickler(head, drip)
    client = NodeClient(
        f"http://127.0.0.1:{server.port}", timeout=30.0, answer_seconds=0.5, retries=0
    )
    try:
        with pytest.raises(e.NodeUnavailableError, match=r"within 0\.5 s"):
            client.get_json("/market/info")
    finally:
        client.close()
        server.close()


ASSETS = [f"gpu-{i}" for i in range(7)]


class _Providers(BaseHTTPRequestHandler):
    """`/market/providers` in pages of at most 3, by asset id; a server flagged "stuck" is a
    node that answers its first page whatever it is asked."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        stuck = "stuck" in self.server.flags  # type: ignore[attr-defined]
        after = "" if stuck else query.get("after", "")
        page = [a for a in ASSETS if a > after][: min(3, int(query.get("limit", 3)))]
        body = json.dumps([{"asset": a} for a in page]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("stuck", [False, True])
def test_providers_are_read_page_by_page(stuck):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Providers)
    server.flags = {"stuck"} if stuck else set()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = NodeClient(f"http://127.0.0.1:{server.server_address[1]}", retries=0)
    try:
        if stuck:  # a node that does not page would be read for ever
            with pytest.raises(e.NodeUnavailableError, match="do not advance"):
                client.providers()
        else:
            assert [p["asset"] for p in client.providers()] == ASSETS
            assert [p["asset"] for p in client.providers_page(after="gpu-1", limit=2)] == [
                "gpu-2", "gpu-3",
            ]  # fmt: skip
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join()
