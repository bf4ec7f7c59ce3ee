"""What protects the node (docs/service.md): body limits however a body arrives, the store
quota, per-client rates on a clock the test drives, requests in flight, account opening, and
caps on the solver options a client may set. Each refusal is mercat's JSON error and changes
nothing."""

from __future__ import annotations

import contextlib
import json
import threading

import anyio
import pytest
from fastapi.testclient import TestClient

from mercat.ledger import (
    IntegerRule,
    Keypair,
    Ledger,
    LedgerConfig,
    OpenAccount,
    Signer,
)
from mercat.market.generators import running_example, standard_auction_market
from mercat.market.market_io import dumps_market
from mercat.node.app import create_app
from mercat.node.guard import NodeGuard
from mercat.node.limits import NodeLimits
from mercat.node.quota import store_bytes
from mercat.storage.cid import cid_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_ledger(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    Ledger.init(url, LedgerConfig(operator=Keypair.generate().public, rule=rule, unit=1)).close()
    return url


@pytest.fixture
def node_with(tmp_path):
    """A node over a fresh ledger and store, with the given limits and a driven clock."""
    clients = []
    url = make_ledger(tmp_path)

    def make(clock=None, client=("10.0.0.1", 5000), **limits):
        app = create_app(
            url,
            tmp_path / "store",
            limits=NodeLimits(**limits),
            clock=clock or Clock(),
        )
        client = TestClient(app, client=client)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def market_body(**options) -> dict:
    return {"market": json.loads(dumps_market(running_example())), "options": options}


# --- bodies --------------------------------------------------------------------------------


def test_a_declared_body_above_the_limit_is_refused_before_it_is_read(node_with, tmp_path):
    node = node_with(content_body_bytes=1 << 20)
    huge = node.post("/storage/content", content=b"x" * (40 << 20))  # 40 MiB, stored on main
    assert huge.status_code == 413 and huge.json()["error"] == "BodyTooLargeError"
    assert store_bytes(tmp_path / "store") == 0  # nothing stored


def test_a_chunked_body_is_cut_off_at_the_limit(node_with, tmp_path):
    node = node_with(content_body_bytes=1 << 20, message_body_bytes=4096)
    sent = []

    def chunks(count):
        for _ in range(count):
            sent.append(1)
            yield b"y" * 65536

    reply = node.post("/storage/content", content=chunks(64))  # no Content-Length
    assert reply.status_code == 413 and reply.json()["error"] == "BodyTooLargeError"
    assert store_bytes(tmp_path / "store") == 0
    message = node.post("/ledger/messages", content=chunks(4))
    assert message.status_code == 413
    assert node.post("/storage/content", content=chunks(2)).status_code == 200  # 128 KiB fits


def test_an_endpoint_without_a_named_limit_gets_the_default(node_with):
    node = node_with(default_body_bytes=1024)
    body = {"noise_multiplier": 1.0, "epsilon": 5.0, "pad": "x" * 2000}
    assert node.post("/privacy/check", json=body).status_code == 413


def test_a_body_that_stops_arriving_is_refused_with_408():
    """The guard on its own, with a client that sends half a body and then nothing."""
    from starlette.routing import Route, Router

    async def endpoint(request):
        await request.body()

    router = Router([Route("/upload", endpoint, methods=["POST"])])
    guard = NodeGuard(
        router, limits=NodeLimits(body_seconds=0.05), router=router, clock=lambda: 0.0
    )
    sent: list[dict] = []
    parts = iter([{"type": "http.request", "body": b"half", "more_body": True}])

    async def receive():
        part = next(parts, None)
        if part is None:
            await anyio.sleep_forever()
        return part

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": [],
             "client": ("10.0.0.9", 1), "query_string": b""}  # fmt: skip

    async def main():
        with pytest.raises(Exception) as raised:
            await guard(scope, receive, send)
        return raised.value

    error = anyio.run(main)
    assert type(error).__name__ == "BodyTimeoutError"  # the app's handler makes it a 408


def _guarded_upload(limits, clock, receive):
    """Run one POST /upload through a guard of its own; the error it raised, or None."""
    from starlette.routing import Route, Router

    async def endpoint(request):
        await request.body()

    router = Router([Route("/upload", endpoint, methods=["POST"])])
    guard = NodeGuard(router, limits=limits, router=router, clock=clock)
    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": [],
             "client": ("10.0.0.9", 1), "query_string": b""}  # fmt: skip

    async def send(message):
        pass

    async def main():
        try:
            await guard(scope, receive, send)
        except Exception as error:
            return error
        return None

    return anyio.run(main)


def test_a_body_trickling_in_under_the_per_part_wait_is_cut_at_the_whole_body_deadline():
    """One byte every 29 s never trips the 30 s wait for each part; the body as a whole has
    its own deadline. Time is the guard's clock, moved by the client: no waiting."""
    clock = Clock()
    parts = 0

    async def receive():
        nonlocal parts
        parts += 1
        clock.now += 29.0  # each byte arrives just before the wait for it would end
        return {"type": "http.request", "body": b"x", "more_body": parts < 100}

    limits = NodeLimits(body_seconds=30, body_total_seconds=60)
    error = _guarded_upload(limits, clock, receive)
    assert type(error).__name__ == "BodyTimeoutError" and "within 60 s" in str(error)
    assert parts == 3  # refused at the first part past the deadline, not after all 100


def test_the_whole_body_deadline_also_ends_a_wait_for_a_part():
    """A client that sends a part and then nothing is cut at the whole body's deadline when
    that comes before the per-part wait ends (the client never sends again, so the outcome
    does not depend on how fast the machine is)."""
    parts = iter([{"type": "http.request", "body": b"half", "more_body": True}])

    async def receive():
        part = next(parts, None)
        if part is None:
            await anyio.sleep_forever()
        return part

    limits = NodeLimits(body_seconds=600, body_total_seconds=0.05)
    error = _guarded_upload(limits, lambda: 0.0, receive)
    assert type(error).__name__ == "BodyTimeoutError" and "within 0.05 s" in str(error)


def test_a_body_timeout_is_a_408_through_the_app(node_with, monkeypatch):
    from mercat import errors as e
    from mercat.node import guard

    async def stalled(self):
        raise e.BodyTimeoutError("no part of the request body arrived for 30 s")

    monkeypatch.setattr(guard._BoundedBody, "__call__", stalled)
    reply = node_with().post("/privacy/check", json={})
    assert reply.status_code == 408 and reply.json()["error"] == "BodyTimeoutError"


# --- the store quota -----------------------------------------------------------------------


def test_the_store_quota_refuses_content_that_does_not_fit(node_with, tmp_path):
    node = node_with(store_quota_bytes=300_000)
    first = node.post("/storage/content", content=b"a" * 100_000)
    assert first.status_code == 200
    used = store_bytes(tmp_path / "store")
    refused = node.post("/storage/content", content=b"b" * 200_000)
    assert refused.status_code == 507 and refused.json()["error"] == "StoreQuotaError"
    block = node.put(f"/storage/blocks/{cid_of(b'c' * 250_000)}", content=b"c" * 250_000)
    assert block.status_code == 507
    assert store_bytes(tmp_path / "store") == used  # nothing of either was stored
    # The quota counts what an upload could add, and measures exactly before it refuses:
    # the same content again (deduplicated) still fits.
    for _ in range(3):
        assert node.post("/storage/content", content=b"a" * 100_000).status_code == 200


def test_uploads_being_received_are_capped_node_wide(tmp_path):
    """Upload bodies held while they arrive (in memory, or spooled to a temporary file) count
    against `upload_bytes` for the whole node: an upload that would pass it is refused with
    503 before it is read, or as soon as what arrived passes it, and stores nothing. The app
    is driven over ASGI, one upload held half-sent until the test lets it finish."""
    KiB = 1 << 10
    app = create_app(
        make_ledger(tmp_path),
        tmp_path / "store",
        limits=NodeLimits(upload_bytes=1024 * KiB, content_body_bytes=1024 * KiB,
                          block_body_bytes=1024 * KiB),
        clock=Clock(),
    )  # fmt: skip
    held_asks, release = anyio.Event(), anyio.Event()

    async def upload(parts, *, declared, wait_before_last=False):
        sent, replies = 0, []
        headers = [(b"content-type", b"application/octet-stream")]
        if declared:
            headers.append((b"content-length", str(sum(map(len, parts))).encode()))
        scope = {"type": "http", "method": "POST", "path": "/storage/content",
                 "raw_path": b"/storage/content", "query_string": b"", "headers": headers,
                 "client": ("10.0.0.3", 1), "server": ("testserver", 80), "scheme": "http",
                 "http_version": "1.1", "root_path": ""}  # fmt: skip

        async def receive():
            nonlocal sent
            if sent == len(parts):
                await anyio.sleep_forever()  # no disconnect while the answer is sent
            if wait_before_last and sent == len(parts) - 1:
                held_asks.set()  # the app took every part but the last: it holds them
                await release.wait()
            sent += 1
            return {"type": "http.request", "body": parts[sent - 1],
                    "more_body": sent < len(parts)}  # fmt: skip

        async def send(message):
            replies.append(message)

        with anyio.move_on_after(60):  # a bound for a broken node, never reached
            await app(scope, receive, send)
        start = next(m for m in replies if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in replies if m["type"] == "http.response.body")
        return start["status"], dict(start["headers"]), json.loads(body)

    async def main():
        answers = {}
        async with anyio.create_task_group() as group:

            async def held():
                parts = [b"a" * (300 * KiB), b"a" * (300 * KiB)]
                answers["held"] = await upload(parts, declared=True, wait_before_last=True)

            group.start_soon(held)
            await held_asks.wait()  # 600 KiB declared and being received
            answers["declared"] = await upload([b"b" * (600 * KiB)], declared=True)
            answers["streamed"] = await upload([b"c" * (300 * KiB)] * 2, declared=False)
            answers["small"] = await upload([b"d" * (200 * KiB)], declared=False)
            release.set()
        answers["later"] = await upload([b"b" * (600 * KiB)], declared=True)
        return answers

    answers = anyio.run(main)
    for name in ("declared", "streamed"):
        status, headers, body = answers[name]
        assert status == 503 and body["error"] == "NodeBusyError", (name, body)
        assert "uploads" in body["detail"] and b"retry-after" in headers
    assert [answers[n][0] for n in ("held", "small", "later")] == [200, 200, 200]
    from mercat.storage.content import content_cid
    from mercat.storage.store import ContentStore

    store = ContentStore(tmp_path / "store")
    assert all(store.has(answers[n][2]["cid"]) for n in ("held", "small", "later"))
    assert not store.has(content_cid(b"c" * (600 * KiB)))  # the refused stream left nothing


# --- rates, requests in flight, accounts ---------------------------------------------------


def test_a_client_above_its_rate_gets_429_until_its_bucket_refills(node_with):
    clock = Clock()
    node = node_with(clock=clock, client_rate=1.0, client_burst=3)
    assert [node.get("/health").status_code for _ in range(3)] == [200] * 3
    refused = node.get("/health")
    assert refused.status_code == 429 and refused.json()["error"] == "RateLimitedError"
    assert refused.headers["retry-after"] == "1"
    other = TestClient(node.app, client=("10.0.0.2", 1))
    assert other.get("/health").status_code == 200  # another address has its own bucket
    clock.now += 1.0
    assert node.get("/health").status_code == 200


@contextlib.contextmanager
def one_slow_request(node, monkeypatch):
    """A request from the node's client held inside the node until the block ends (it
    waits in `Ledger.accounts`); yields where its answer will be (`["slow"]`)."""
    entered, release = threading.Event(), threading.Event()
    answers = {}

    def slow_accounts(self):
        entered.set()
        release.wait(30)
        return []

    monkeypatch.setattr(Ledger, "accounts", slow_accounts)
    worker = threading.Thread(
        target=lambda: answers.setdefault("slow", node.get("/ledger/accounts"))
    )
    worker.start()
    try:
        assert entered.wait(30)
        yield answers
    finally:
        release.set()
        worker.join()


def test_requests_above_the_in_flight_limit_get_503(node_with, monkeypatch):
    node = node_with(max_in_flight=1)
    with one_slow_request(node, monkeypatch) as answers:
        busy = node.get("/health")
    assert busy.status_code == 503 and busy.json()["error"] == "NodeBusyError"
    assert busy.headers["retry-after"] == "1"
    assert answers["slow"].status_code == 200
    assert node.get("/health").status_code == 200  # the slot came back


def test_one_address_cannot_hold_every_request_slot(node_with, monkeypatch):
    node = node_with(client_in_flight=1)
    with one_slow_request(node, monkeypatch) as answers:
        busy = node.get("/health")
        other = TestClient(node.app, client=("10.0.0.2", 1)).get("/health")
    assert busy.status_code == 503 and busy.json()["error"] == "NodeBusyError"
    assert "this address" in busy.json()["detail"] and busy.headers["retry-after"] == "1"
    assert other.status_code == 200  # the node still has slots for everybody else
    assert answers["slow"].status_code == 200
    assert node.get("/health").status_code == 200  # the address's slot came back


def test_slow_work_does_not_stall_other_requests(node_with, monkeypatch):
    node = node_with()
    entered, release = threading.Event(), threading.Event()
    order = []

    def slow_accounts(self):
        entered.set()
        release.wait(30)
        order.append("slow request done")
        return []

    monkeypatch.setattr(Ledger, "accounts", slow_accounts)
    worker = threading.Thread(target=node.get, args=("/ledger/accounts",))
    worker.start()
    assert entered.wait(30)
    assert node.get("/health").status_code == 200  # on the event loop, this would wait
    order.append("health answered")
    release.set()
    worker.join()
    assert order == ["health answered", "slow request done"]


def test_opening_accounts_is_rate_limited_and_a_refusal_writes_nothing(node_with):
    clock = Clock()
    node = node_with(clock=clock, account_rate=1 / 60, account_burst=2)
    keys = [Keypair.generate() for _ in range(3)]
    lid = node.get("/ledger/info").json()["ledger_id"]
    opened = [
        node.post("/ledger/messages", content=Signer(k, lid).sign(OpenAccount()).to_json())
        for k in keys
    ]
    assert [r.status_code for r in opened] == [200, 200, 429]
    assert opened[2].json()["error"] == "RateLimitedError"
    assert opened[2].headers["retry-after"] == "60"
    assert len(node.get("/ledger/journal").json()) == 2
    clock.now += 60
    again = node.post(
        "/ledger/messages", content=Signer(keys[2], lid).sign(OpenAccount()).to_json()
    )
    assert again.status_code == 200


# --- solver options from the network -------------------------------------------------------


def test_solver_threads_and_processes_are_capped(node_with):
    node = node_with()
    for options, named in [
        ({"threads": 1_000_000}, "threads"),
        ({"threads": 2}, "[1, 1]"),
        ({"time_limit": 1e9}, "time_limit"),
        ({"time_limit": True}, "number"),
        ({"bogus": 1}, "bogus"),
    ]:
        reply = node.post("/clearing/optimal", json=market_body(**options))
        assert reply.status_code == 422, options
        assert reply.json()["error"] == "InvalidParameterError"
        assert named in reply.json()["detail"]
    auction = {"market": json.loads(dumps_market(standard_auction_market(0, 6, 2)))}
    for options in ({"workers": 64}, {"groups": 10_000}):
        reply = node.post("/clearing/vcg", json={**auction, "options": options})
        assert reply.status_code == 422, options
    maker = node.post("/clearing/posted-price", json=market_body(makers=10_000))
    assert maker.status_code == 422 and "makers" in maker.json()["detail"]


def test_one_clients_solver_options_never_leak_into_the_next_solve(node_with):
    """Before the fix, a first solve with threads=2 left every later optimal and vcg clearing
    failing with "status Not Set" until the node restarted."""
    node = node_with(solver_threads=2, workers=1)
    auction = {"market": json.loads(dumps_market(standard_auction_market(0, 6, 2)))}
    assert node.post("/clearing/optimal", json=market_body(threads=2)).status_code == 200
    for _ in range(2):
        one = node.post("/clearing/optimal", json=market_body(threads=1))
        assert one.status_code == 200, one.text
        assert one.json()["diagnostics"]["status"] == "Optimal"
        vcg = node.post("/clearing/vcg", json=auction)
        assert vcg.status_code == 200, vcg.text
        assert vcg.json()["certificate"]["proven"] is True


def test_a_solve_past_the_time_limit_is_stopped_with_504(node_with, monkeypatch):
    from mercat.node import jobs

    node = node_with(work_seconds=0.5)
    # The worker runs the job by reference: make the job itself one that never ends.
    monkeypatch.setattr(jobs, "clear_market", _endless_solve)
    reply = node.post("/clearing/optimal", json=market_body())
    assert reply.status_code == 504 and reply.json()["error"] == "WorkTimeoutError"
    monkeypatch.undo()
    # The killed worker was replaced: the next job runs in a fresh process (which imports
    # the solver first), so it gets a limit no load can reach.
    node.app.state.pool.time_limit = 600.0
    assert node.post("/clearing/optimal", json=market_body()).status_code == 200


def _endless_solve(*args):
    import time

    time.sleep(600)
