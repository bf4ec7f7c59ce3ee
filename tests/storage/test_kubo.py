"""KuboStore against a fake kubo RPC server on loopback: the same CIDs as the local store,
pinning of roots, and a daemon that lies, errs, floods or stalls is refused within bounds."""

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from mercat.errors import (
    ContentCorruptedError,
    ContentMismatchError,
    ContentNotFoundError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import cid_from_digest
from mercat.storage.content import content_cid
from mercat.storage.kubo import MAX_BLOCK_BYTES, KuboStore
from mercat.storage.store import ContentStore


class FakeKubo(BaseHTTPRequestHandler):
    """The three block commands of kubo's RPC API, as kubo answers them (POST only, errors as
    500 with {"Message", "Code", "Type"}), over an in-memory block store."""

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, message):
        self.reply(500, json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode())

    def do_GET(self):
        self.reply(405, b"405 - Method Not Allowed", "text/plain")

    def do_POST(self):
        server = self.server
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.calls.append((url.path, query))
        if server.behaviour == "stall":
            server.release.wait(10)
            return
        if url.path == "/api/v0/block/put":
            boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
            part = body.split(b"--" + boundary)[1]
            data = part.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]
            codec = query.get("cid-codec", "raw")
            cid = cid_from_digest(hashlib.sha256(data).digest(), codec)
            server.blocks[cid] = data
            if query.get("pin") == "true":
                server.pins.add(cid)
            answer = {"Key": cid if server.behaviour != "rename" else server.other, "Size": 1}
            self.reply(200, json.dumps(answer).encode())
        elif url.path in ("/api/v0/block/get", "/api/v0/block/stat"):
            cid = query["arg"]
            if cid not in server.blocks:
                return self.error(
                    f"block was not found locally (offline): ipld: could not find {cid}"
                )
            data = server.blocks[cid]
            if server.behaviour == "lie":
                data = b"not " + data
            if server.behaviour == "flood":
                data = b"x" * (MAX_BLOCK_BYTES + 10)
            if url.path.endswith("stat"):
                return self.reply(200, json.dumps({"Key": cid, "Size": len(data)}).encode())
            self.reply(200, data, "text/plain")
        else:
            self.error(f"unknown command {url.path}")


@pytest.fixture
def daemon():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKubo)
    server.blocks, server.pins, server.calls = {}, set(), []
    server.behaviour, server.release = "honest", threading.Event()
    server.other = cid_from_digest(b"\x00" * 32)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def kubo(server, **kwargs):
    return KuboStore(f"http://127.0.0.1:{server.server_address[1]}", chunk_size=1024, **kwargs)


def test_content_goes_through_the_daemon_with_the_local_stores_cid(daemon, tmp_path):
    store = kubo(daemon)
    data = os.urandom(5000)
    cid = store.put(data)
    assert cid == ContentStore(tmp_path, chunk_size=1024).put(data) == content_cid(data, 1024)
    assert store.get(cid) == data
    assert store.stat(cid).size == 5000 and store.has(cid)
    assert daemon.pins == {cid}  # the root, pinned recursively; leaves unpinned
    assert all(path.startswith("/api/v0/block/") for path, _ in daemon.calls)
    encrypted, key = store.put_encrypted(b"sealed input")
    assert store.get_decrypted(encrypted, key) == b"sealed input"


def test_a_missing_block_is_not_found(daemon):
    store = kubo(daemon)
    cid = content_cid(b"never stored")
    assert not store.has_block(cid)
    with pytest.raises(ContentNotFoundError, match="holds no block"):
        store.get(cid)


def test_a_daemon_that_returns_other_bytes_is_refused(daemon):
    store = kubo(daemon)
    cid = store.put(b"the real thing")
    daemon.behaviour = "lie"
    with pytest.raises(ContentCorruptedError, match="do not hash"):
        store.get(cid)


def test_a_daemon_that_stores_under_another_cid_is_refused(daemon):
    daemon.behaviour = "rename"
    with pytest.raises(StorageError, match=r"stored block .* as"):
        kubo(daemon).put(b"x")


def test_an_oversized_answer_is_cut_off(daemon):
    store = kubo(daemon)
    cid = store.put(b"small")
    daemon.behaviour = "flood"
    with pytest.raises(StorageError, match=f"more than {MAX_BLOCK_BYTES} bytes"):
        store.read_block(cid)


def test_a_stalled_daemon_times_out(daemon):
    store = kubo(daemon, timeout=0.3)
    daemon.behaviour = "stall"
    with pytest.raises(StorageError, match="timed out"):
        store.put(b"x")


def test_an_unreachable_daemon_is_a_storage_error():
    with socket_free_port() as port:
        store = KuboStore(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(StorageError, match="block/put failed"):
        store.put(b"x")


def test_blocks_from_elsewhere_are_checked_before_the_daemon_sees_them(daemon):
    store = kubo(daemon)
    with pytest.raises(ContentMismatchError):
        store.put_block(content_cid(b"one"), b"another")
    assert daemon.calls == []


@pytest.mark.parametrize(
    ("api", "kwargs", "message"),
    [
        ("ftp://127.0.0.1:5001", {}, "http"),
        ("http://127.0.0.1:5001/api/v0", {}, "bare"),
        ("127.0.0.1:5001", {}, "http"),
        ("http://127.0.0.1:5001", {"timeout": 0}, "timeout"),
        ("http://127.0.0.1:5001", {"chunk_size": 2 << 20}, "largest block"),
    ],
)
def test_bad_settings_are_refused(api, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        KuboStore(api, **kwargs)


class socket_free_port:
    """A loopback port with nothing listening on it (bound, then closed)."""

    def __enter__(self):
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc):
        return False


def test_the_cli_and_a_node_keep_content_in_the_daemon(daemon, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from mercat.cli import app
    from mercat.node.app import create_app

    api = f"http://127.0.0.1:{daemon.server_address[1]}"
    data = os.urandom(600_000)
    (tmp_path / "model.bin").write_bytes(data)
    runner = CliRunner()
    put = runner.invoke(app, ["storage", "put", str(tmp_path / "model.bin"), "--ipfs-api", api])
    assert put.exit_code == 0, put.output
    cid = put.stdout.split()[0]
    assert cid == content_cid(data) and daemon.pins == {cid}
    got = runner.invoke(app, ["storage", "get", cid, "-o", "-", "--ipfs-api", api])
    assert got.exit_code == 0 and got.stdout_bytes == data
    both = runner.invoke(app, ["storage", "stat", cid, "--ipfs-api", api, "--store", "x"])
    assert both.exit_code == 2 and "not both" in both.output
    with TestClient(create_app(None, KuboStore(api))) as node:
        served = node.get(f"/storage/content/{cid}")
        assert served.status_code == 200 and served.content == data
        uploaded = node.post("/storage/content", content=b"from a peer")
        assert uploaded.json()["cid"] in daemon.pins
