"""The node's client against a node that answers what no node should: headers that are not
numbers, bodies that are not JSON or nest past any parser. Each becomes one of mercat's
errors (what agents, oracles and requesters catch), never a ValueError or a RecursionError."""

from __future__ import annotations

import sys
import threading
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
