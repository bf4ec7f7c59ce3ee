"""The live market's endpoints: tasks by assignee and requester, signed claims and reports
refused unless their author may say them (and nothing changes then), the outputs, the
requests, the round history, the providers, the event list and stream, the dashboard."""

from __future__ import annotations

import json

import anyio
import pytest

from mercat.identity import Keypair
from mercat.node.claims import OutcomeClaim, SignedClaim
from mercat.node.limits import NodeLimits
from mercat.oracle import OracleReport, SignedReport
from mercat.storage.content import content_cid

from .market_fixtures import DATA, served_copy, small_market

ABSENT = content_cid(b"never stored")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One ledger for the module (creating one costs a second or more), copied per test."""
    root = tmp_path_factory.mktemp("template")
    return root, small_market(root)


@pytest.fixture
def market(tmp_path, template):
    limits = NodeLimits(event_stream_seconds=0.5, event_streams=1)
    with served_copy(*template, tmp_path, limits=limits) as m:
        yield m


def claim(m, signer, asset="gpu-1", *, success=True, output="store", ledger=None, task="t1"):
    if output == "store":
        output = m.client.post("/storage/content", content=DATA).json()["cid"]
    c = OutcomeClaim(ledger or m.ledger_id, 1, task, asset, success, output, 40)
    return m.client.post("/market/claims", json=SignedClaim.sign(c, signer).to_wire())


def report(m, oracle, *, success=True, ledger=None):
    r = OracleReport(1, "t1", success, True, 50, None, ledger or m.ledger_id)
    return m.client.post("/market/reports", json=SignedReport.sign(r, oracle).to_wire())


def test_tasks_are_found_by_assignee_and_by_requester(market):
    get = lambda **q: market.client.get("/market/tasks", params=q).json()["tasks"]  # noqa: E731
    assert [t["task"] for t in get(assignee="gpu-2")] == ["t1"]
    assert [t["task"] for t in get(assignee=market.alice.public)] == ["t1"]
    assert [t["task"] for t in get(requester=market.bob.public)] == ["t1"]
    assert get(assignee="gpu-9") == [] and get(status="settled") == []
    view = get(request="job1")[0]
    assert view["workload"] == "train-logreg:steps=20" and view["inputs"] == [market.input_cid]
    assert [a["kind"] for a in view["assets"]] == ["server", "server"]
    assert market.client.get("/market/tasks", params={"assignee": "x" * 65}).status_code == 422


def test_tasks_are_paged_newest_or_oldest_round_first_after_a_cursor(market):
    import dataclasses

    from mercat.node.board import now_ms

    market.board.record_tasks(
        [dataclasses.replace(market.task, round=r, task=t) for r in (2, 3) for t in ("a", "b")],
        now_ms(),
    )
    keys = lambda **q: [  # noqa: E731
        (t["round"], t["task"])
        for t in market.client.get("/market/tasks", params=q).json()["tasks"]
    ]
    oldest = [(1, "t1"), (2, "a"), (2, "b"), (3, "a"), (3, "b")]
    assert keys() == [(3, "a"), (3, "b"), (2, "a"), (2, "b"), (1, "t1")]
    assert keys(order="oldest") == oldest
    pages, after = [], None
    while True:
        page = keys(order="oldest", limit=2, **({"after": after} if after else {}))
        if not page:
            break
        pages.append(page)
        after = f"{page[-1][0]}/{page[-1][1]}"
    assert pages == [oldest[0:2], oldest[2:4], oldest[4:]]
    assert keys(limit=2, after="3/b") == [(2, "a"), (2, "b")]  # newest first, after a cursor
    for bad in ({"order": "random"}, {"after": "3"}, {"after": "x/a"}, {"after": "3/a b"}):
        refused = market.client.get("/market/tasks", params=bad)
        assert refused.status_code == 422, bad


def test_a_claim_from_the_servers_owner_is_kept_with_the_nodes_time(market):
    reply = claim(market, market.alice)
    assert reply.status_code == 200, reply.text
    view = market.client.get("/market/tasks/1/t1").json()
    assert [(c["asset"], c["success"]) for c in view["claims"]] == [("gpu-1", True)]
    assert view["claims"][0]["received_ms"] == reply.json()["received_ms"]
    outputs = market.client.get("/market/tasks/1/t1/outputs").json()
    assert outputs["outputs"][0]["output"] and outputs["agreed"] is None  # not settled yet
    kinds = [e["kind"] for e in market.client.get("/market/events/recent").json()]
    assert "claim_received" in kinds


@pytest.mark.parametrize(
    ("make", "status", "error"),
    [
        (lambda m: claim(m, m.bob), 403, "UnauthorizedError"),  # not the owner
        (lambda m: claim(m, m.alice, asset="gpu-7"), 403, "UnauthorizedError"),  # not bound
        (lambda m: claim(m, m.alice, ledger="cd" * 16), 409, "WrongLedgerError"),
        (lambda m: claim(m, m.alice, task="t9"), 404, "UnknownTaskError"),
        (lambda m: claim(m, m.alice, output=ABSENT), 404, "ContentNotFoundError"),
        (lambda m: m.client.post("/market/claims", content=b"{"), 422, "MalformedMessageError"),
        (
            lambda m: m.client.post("/market/claims", json={"round": 1}),
            422,
            "MalformedMessageError",
        ),
    ],
)
def test_claims_that_may_not_be_made_are_refused_and_change_nothing(market, make, status, error):
    reply = make(market)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == error
    assert market.client.get("/market/tasks/1/t1").json()["claims"] == []


def test_a_forged_or_repeated_claim_is_refused(market):
    good = OutcomeClaim(market.ledger_id, 1, "t1", "gpu-1", False, None, 5, "crashed")
    wire = SignedClaim.sign(good, market.alice).to_wire()
    forged = {**wire, "error": "something else"}
    assert market.client.post("/market/claims", json=forged).status_code == 403
    assert market.client.post("/market/claims", json=wire).status_code == 200
    again = market.client.post("/market/claims", json=wire)
    assert again.status_code == 409 and again.json()["error"] == "AlreadyExistsError"


def test_reports_come_only_from_the_oracle_set_once_each(market):
    stranger = report(market, Keypair.generate())
    assert stranger.status_code == 409 and stranger.json()["error"] == "UnknownOracleError"
    wrong = report(market, market.oracles[0], ledger="cd" * 16)
    assert wrong.json()["error"] == "WrongLedgerError"
    ok = report(market, market.oracles[0])
    assert ok.status_code == 200 and ok.json()["status"] == "pending"
    assert report(market, market.oracles[0]).json()["error"] == "AlreadyExistsError"
    view = market.client.get("/market/tasks/1/t1").json()
    assert view["reported_by"] == [market.oracles[0].public]


def test_requests_rounds_providers_book_and_summary_answer(market):
    c = market.client
    mine = c.get("/market/requests", params={"owner": market.bob.public}).json()
    assert [r["request"] for r in mine] == ["job1"] and mine[0]["tasks"][0]["task"] == "t1"
    assert c.get("/market/requests/job1").json()["escrow"] == 200  # 500 escrowed, 300 held
    assert c.get("/market/requests/nope").json()["error"] == "UnknownRequestError"
    assert c.get("/market/rounds").json()[0]["phase"] == "executing"
    providers = {p["asset"]: p for p in c.get("/market/providers").json()}
    assert providers["gpu-1"]["stake"] == 400 and providers["gpu-1"]["failure_rate"] is None
    book = c.get("/market/book").json()
    assert book["requests"] == [] and {o["asset"] for o in book["offers"]} == {"gpu-1", "gpu-2"}
    summary = c.get("/market/summary").json()
    assert summary["tasks"]["open"] == 1 and summary["loop"] is None
    info = c.get("/market/info").json()
    assert info["quorum"] == 2 and len(info["oracles"]) == 3 and info["loop"] is None


def test_the_event_stream_replays_ends_and_is_bounded(market):
    claim(market, market.alice)
    with market.client.stream("GET", "/market/events") as stream:
        busy = market.client.get("/market/events")  # one stream is this node's limit
        assert busy.status_code == 503 and busy.json()["error"] == "NodeBusyError"
        text = "".join(stream.iter_text())  # ends after event_stream_seconds
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert "claim_received" in [e["kind"] for e in events]
    assert "event: claim_received" in text and text.startswith("retry:")
    last = events[-1]["id"]
    resumed = market.client.get("/market/events", headers={"Last-Event-ID": str(last)}).text
    assert "data:" not in resumed  # nothing after the last one seen
    assert market.client.get("/market/events").status_code == 200  # the slot came back


def test_a_last_event_id_that_is_no_plain_number_is_ignored(market):
    # Over HTTP a header is Latin-1, where b"\xb2" is "²": a digit to str.isdigit that int()
    # refuses. The test client re-encodes header bytes as UTF-8, so the app is called as a
    # server would call it.
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/market/events", "raw_path": b"/market/events",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"last-event-id", b"\xb2")],
    }  # fmt: skip
    sent, asked = [], []

    async def receive():  # the request, then nothing: the client stays until the stream ends
        if asked:
            await anyio.sleep_forever()
        asked.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    anyio.run(market.client.app, scope, receive, send)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.startswith(b"retry:") and b"InternalError" not in body


def test_the_dashboard_is_served_with_a_strict_policy(market):
    page = market.client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "/dashboard/dashboard.js" in page.text and "http" not in page.text.split("<body>")[0]
    script = market.client.get("/dashboard/dashboard.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert market.client.get("/dashboard/secrets.txt").status_code == 404


FLOWS = ("charged", "payouts", "margin", "refunded", "rewards", "penalties")


def test_the_summary_counts_every_round_however_many_pages_they_take(tmp_path, template):
    """Rounds are read a page (`task_page`) at a time: with pages of 2, 25 recorded rounds
    take 13 pages, and every round counts in the totals."""
    with served_copy(*template, tmp_path, limits=NodeLimits(task_page=2)) as m:
        before = m.client.get("/market/summary").json()
        for r in range(100, 125):
            flows = dict(zip(FLOWS, (10, 7, 3, 1, 2, 4), strict=True))
            m.board.set_round(r, "opening")
            m.board.set_round(r, "closed", **flows)
        after = m.client.get("/market/summary").json()
    assert after["rounds"] == before["rounds"] + 25
    for key, each in zip(FLOWS, (10, 7, 3, 1, 2, 4), strict=True):
        assert after["flows"][key] == before["flows"][key] + 25 * each, key


def test_the_summary_reads_kept_totals_not_every_round(tmp_path, template, monkeypatch):
    """However many rounds a market has run, the summary reads one row of totals: it never
    reads the round history."""
    with served_copy(*template, tmp_path) as m:
        for r in range(100, 110):
            m.board.set_round(r, "opening")
            m.board.set_round(r, "closed", **dict(zip(FLOWS, (10, 7, 3, 1, 2, 4), strict=True)))

        def no_history(*args, **kwargs):
            raise AssertionError("the summary read the round history")

        monkeypatch.setattr(m.board, "rounds", no_history)
        summary = m.client.get("/market/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["rounds"] >= 10 and summary.json()["flows"]["charged"] >= 100


def test_providers_are_listed_a_page_at_a_time_by_asset_id(market):
    get = lambda **q: market.client.get("/market/providers", params=q)  # noqa: E731
    assert [p["asset"] for p in get().json()] == ["gpu-1", "gpu-2"]  # one default page
    assert [p["asset"] for p in get(limit=1).json()] == ["gpu-1"]
    assert [p["asset"] for p in get(limit=1, after="gpu-1").json()] == ["gpu-2"]
    assert get(after="gpu-2").json() == []
    assert [p["asset"] for p in get(after="a").json()] == ["gpu-1", "gpu-2"]
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"after": "no spaces"}):
        refused = get(**bad)
        assert refused.status_code == 422, bad
        body = refused.json()
        assert body["error"] == "InvalidParameterError" and "\n" not in body["detail"], bad
