"""The node's bounds and its token buckets, on a clock the tests drive (no waiting, no timing)."""

from __future__ import annotations

import pytest

from mercat.errors import InvalidParameterError, RateLimitedError
from mercat.node.limits import (
    AccountOpenings,
    NodeLimits,
    RateLimiter,
    TokenBucket,
    client_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token comes back in 1/rate s
    assert bucket.take(0.25) == pytest.approx(0.25)  # a refusal takes nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst


def test_each_client_has_its_own_bucket_and_the_table_is_bounded():
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, capacity=3, clock=clock)
    assert limiter.take("a") == limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0.0  # another address is not slowed by a's use
    for name in ("c", "d", "e"):
        limiter.take(name)
    assert len(limiter) == 3  # a thousand addresses cost three buckets
    clock.now += 1.0
    assert limiter.take("a") == 0.0


def test_ipv6_clients_share_a_bucket_per_64_network():
    assert client_key(("2001:db8::1", 1)) == client_key(("2001:db8::ffff:1", 2))
    assert client_key(("2001:db8::1", 1)) == "2001:db8::/64"
    assert client_key(("2001:db8:0:1::1", 1)) != client_key(("2001:db8::1", 1))
    assert client_key(("::ffff:10.0.0.1", 1)) == "10.0.0.1" == client_key(("10.0.0.1", 9))
    assert client_key(None) == "unknown"
    assert client_key(("testclient", 1)) == "testclient"


def test_opening_accounts_is_limited_per_client_and_for_the_whole_node():
    clock = Clock()
    limits = NodeLimits(
        account_rate=1 / 60, account_burst=2, node_account_rate=0.5, node_account_burst=3
    )
    openings = AccountOpenings(limits, clock)
    openings.admit("a")
    openings.admit("a")
    with pytest.raises(RateLimitedError, match="from this address") as refused:
        openings.admit("a")
    assert refused.value.retry_after == pytest.approx(60.0)
    openings.admit("b")  # the node's third token
    with pytest.raises(RateLimitedError, match="all clients") as busy:
        openings.admit("c")  # c never opened one, but the node is at its rate
    assert busy.value.retry_after == pytest.approx(2.0)
    clock.now += 2.0
    openings.admit("c")
    clock.now += 60.0
    openings.admit("a")


def test_limits_are_checked_and_set_from_key_value_settings():
    limits = NodeLimits.from_settings(["workers=3", "store-quota-bytes=2GiB", "client_rate=0.5"])
    assert (limits.workers, limits.store_quota_bytes, limits.client_rate) == (3, 2 << 30, 0.5)
    assert NodeLimits.from_settings(["solver_processes=0"]).solver_processes == 0
    for bad, message in [
        (["workers"], "KEY=VALUE"),
        (["nope=1"], "KEY=VALUE"),
        (["workers=two"], "needs a int"),
        (["workers=0"], "integer >= 1"),
        (["client_in_flight=0"], "integer >= 1"),
        (["client_rate=nan"], "finite number > 0"),
        (["client_rate=-1"], "finite number > 0"),
    ]:
        with pytest.raises(InvalidParameterError, match=message):
            NodeLimits.from_settings(bad)
    with pytest.raises(InvalidParameterError, match="max_in_flight"):
        NodeLimits(max_in_flight=True)
    with pytest.raises(InvalidParameterError, match=r"upload_bytes .* at least the largest"):
        NodeLimits.from_settings(["upload_bytes=1GiB", "content_body_bytes=2GiB"])


def test_every_endpoint_has_a_body_limit():
    limits = NodeLimits()
    assert limits.body_bytes("/ledger/messages") == 1 << 20
    assert limits.body_bytes("/storage/content") == 1 << 30
    assert limits.body_bytes("/an/endpoint/added/later") == 64 << 10
    assert limits.body_bytes(None) == 64 << 10


def test_the_docs_name_every_limit_with_its_default():
    import dataclasses
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    section = text[text.index("## What protects the node") : text.index("## Tests")]
    missing = [f.name for f in dataclasses.fields(NodeLimits) if f"`{f.name}`" not in section]
    assert missing == []


@pytest.mark.parametrize("providers", [1, 10, 40, 200])
def test_a_devnets_limits_admit_all_its_participants_at_once(providers):
    """Every devnet participant connects from 127.0.0.1: the node's guard must let all of
    them hold their most open requests at once, and `mercat devnet` must pass that on."""
    import anyio
    from starlette.routing import Router

    from mercat.node.devnet_commands import LIMITS, commands, in_files
    from mercat.node.genesis import DevnetSetup
    from mercat.node.guard import NodeGuard
    from mercat.node.local_market import IN_FLIGHT_PER_PARTICIPANT, devnet_limits

    setup = DevnetSetup(providers=providers, oracles=3, requesters=2)
    limits = devnet_limits(providers + 3 + 2)
    wanted = IN_FLIGHT_PER_PARTICIPANT * (providers + 3 + 2)
    statuses: list[int] = []

    async def scenario() -> None:
        everyone_in = anyio.Event()
        answered = 0

        def count() -> None:
            nonlocal answered
            answered += 1
            if answered == wanted:
                everyone_in.set()

        async def app(scope, receive, send) -> None:  # holds its slot until all are in
            count()
            await everyone_in.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        guard = NodeGuard(app, limits=limits, router=Router(), clock=Clock())

        async def one(i: int) -> None:
            scope = {"type": "http", "method": "GET", "path": "/health", "headers": [],
                     "query_string": b"", "client": ("127.0.0.1", 1000 + i)}  # fmt: skip

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
                    if message["status"] != 200:  # refused: it counts as in, to end the test
                        count()

            await guard(scope, receive, send)

        async with anyio.create_task_group() as group:
            for i in range(wanted):
                group.start_soon(one, i)

    anyio.run(scenario)
    assert statuses.count(200) == wanted, sorted(set(statuses))
    assert limits.client_in_flight <= limits.max_in_flight
    node = commands(setup, 8000, ".", in_files("keys"))[0].args
    assert "client_in_flight" in LIMITS
    assert f"client_in_flight={limits.client_in_flight}" in node


def test_every_node_limit_and_the_clients_bounds_are_documented():
    """docs/service.md names every `--limit` key where it says what protects the node, and
    the client's bounds on an answer where it says what the client trusts."""
    import dataclasses
    import inspect
    from pathlib import Path

    from mercat.node.client import NodeClient

    text = (Path(__file__).parents[2] / "docs" / "service.md").read_text()
    protects = text.split("## What protects the node")[1].split("\n## ")[0]
    missing = [f.name for f in dataclasses.fields(NodeLimits) if f"`{f.name}`" not in protects]
    assert missing == []
    trust = text.split("## Trust and errors")[1].split("\n## ")[0]
    for name in ("timeout", "answer_seconds", "max_answer_bytes"):
        assert name in inspect.signature(NodeClient).parameters
        assert f"`{name}`" in trust, name
