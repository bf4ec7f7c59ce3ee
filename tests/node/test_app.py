"""The marketplace node over HTTP: the ledger example of docs/ledger.md run through the API,
storage by CID with every byte checked, clearing and the privacy check, and errors as JSON."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    FundPool,
    IntegerRule,
    Keypair,
    Ledger,
    LedgerConfig,
    Offer,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    RequestTerms,
    Settle,
    Signer,
    TaskTerms,
)
from mercat.market.generators import running_example
from mercat.market.market_io import dumps_market
from mercat.node.app import create_app
from mercat.oracle import OracleReport, SignedReport
from mercat.storage.cid import cid_of


@pytest.fixture
def keys():
    return {name: Keypair.generate() for name in ("op", "alice", "bob", "oracle")}


@pytest.fixture
def node(tmp_path, keys):
    url = f"sqlite:///{tmp_path}/ledger.db"
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    Ledger.init(url, LedgerConfig(operator=keys["op"].public, rule=rule, unit=1)).close()
    with TestClient(create_app(url, tmp_path / "store")) as client:
        yield client


def post_message(client, message):
    return client.post("/ledger/messages", content=message.to_json())


def test_a_task_is_escrowed_run_attested_and_settled_through_the_api(node, keys):
    op, alice, bob, oracle = (keys[k] for k in ("op", "alice", "bob", "oracle"))
    info = node.get("/ledger/info").json()
    ledger_id = info["ledger_id"]
    assert info["operator"] == op.public
    operator, A, B = Signer(op, ledger_id), Signer(alice, ledger_id), Signer(bob, ledger_id)
    for message in [
        A.sign(OpenAccount()),
        B.sign(OpenAccount()),
        operator.sign(AddOracle(oracle=oracle.public)),
        operator.sign(Deposit(account=alice.public, amount=5_000)),
        operator.sign(Deposit(account=bob.public, amount=5_000)),
        operator.sign(Deposit(account=op.public, amount=1_000)),
        operator.sign(FundPool(amount=1_000)),
        A.sign(AddAsset(asset="gpu-1", stake=990)),
        A.sign(PostOffer(offer=Offer("gpu-1", capacity={"gpu": 8}, cost=100))),
        B.sign(PostRequest(terms=RequestTerms("job", max_price=300, demand={"gpu": 2}))),
        operator.sign(OpenTasks(round=1, tasks=(TaskTerms("t1", "job", ("gpu-1",), (120,), 150),))),
    ]:
        reply = post_message(node, message)
        assert reply.status_code == 200, reply.text
        assert reply.json()["applied"] is True
    report = SignedReport.sign(OracleReport(1, "t1", True, True, 80, None, ledger_id), oracle)
    assert (
        post_message(node, operator.sign(Settle(round=1, task="t1", reports=(report,)))).status_code
        == 200
    )
    balance = node.get(f"/ledger/balance/avail:{alice.public}").json()["balance"]
    assert balance == 4130  # the documented example's numbers, over HTTP
    assert [a["id"] for a in node.get("/ledger/assets").json()] == ["gpu-1"]
    assert node.get("/ledger/offers").json()["gpu-1"]["cost"] == 100
    (job,) = node.get("/ledger/requests").json()
    assert (job["request"], job["status"], job["terms"]["max_price"]) == ("job", "closed", 300)
    (task,) = node.get("/ledger/tasks", params={"round": 1}).json()
    assert (task["task"], task["status"], task["charge"]) == ("t1", "settled", 150)
    assert node.get("/ledger/verify").json()["ok"] is True
    assert len(node.get("/ledger/journal", params={"limit": 3}).json()) == 3


def test_ledger_refusals_are_json_with_the_right_status(node, keys):
    ledger_id = node.get("/ledger/info").json()["ledger_id"]
    alice, bob = Signer(keys["alice"], ledger_id), Signer(keys["bob"], ledger_id)
    assert post_message(node, alice.sign(OpenAccount())).status_code == 200
    broke = post_message(node, alice.sign(PostRequest(terms=RequestTerms("job", max_price=10))))
    assert broke.status_code == 409
    assert broke.json()["error"] == "InsufficientFundsError"
    replay = alice.sign(OpenAccount(), nonce=7)
    forged = json.loads(replay.to_json())
    forged["signature"] = "00" * 64
    assert node.post("/ledger/messages", content=json.dumps(forged)).status_code == 403
    assert node.post("/ledger/messages", content="not json").status_code == 422
    stranger = post_message(node, bob.sign(Deposit(account=keys["bob"].public, amount=5)))
    assert stranger.status_code == 404 and stranger.json()["error"] == "UnknownAccountError"
    before = node.get("/ledger/journal").json()
    assert len(before) == 1  # nothing refused was written


def test_content_goes_in_and_comes_out_by_cid(node):
    data = os.urandom(3_000_000)
    put = node.post("/storage/content", content=data)
    assert put.status_code == 200
    cid = put.json()["cid"]
    got = node.get(f"/storage/content/{cid}")
    assert got.content == data and got.headers["x-content-cid"] == cid
    assert node.get(f"/storage/stat/{cid}").json()["blocks"] == 12 + 1  # 256 KiB leaves, root
    hello = cid_of(b"hello")
    assert node.put(f"/storage/blocks/{hello}", content=b"hello").status_code == 200
    assert node.get(f"/storage/blocks/{hello}").content == b"hello"
    lie = node.put(f"/storage/blocks/{cid_of(b'one')}", content=b"another")
    assert lie.status_code == 422 and lie.json()["error"] == "ContentMismatchError"
    assert node.get(f"/storage/content/{cid_of(b'never')}").status_code == 404
    assert node.get("/storage/content/not-a-cid").status_code == 422


def test_a_market_clears_as_mercat_clear_does(node, tmp_path):
    from typer.testing import CliRunner

    from mercat.cli import app

    text = dumps_market(running_example())
    (tmp_path / "market.json").write_text(text)
    market = json.loads(text)
    reply = node.post("/clearing/optimal", json={"market": market})
    assert reply.status_code == 200, reply.text
    cli = CliRunner().invoke(app, ["clear", str(tmp_path / "market.json"), "--json"])
    expected = json.loads(cli.stdout)
    assert reply.json()["welfare"] == expected["welfare"] == pytest.approx(4.0)  # t1 on n1, n2
    assert reply.json()["allocation"] == expected["allocation"]
    assert node.post("/clearing/nope", json={"market": market}).status_code == 404
    bad = node.post("/clearing/optimal", json={"market": market, "options": {"bogus": 1}})
    assert bad.status_code == 422 and "bogus" in bad.json()["detail"]
    assert node.post("/clearing/optimal", json={"market": {"requests": 5}}).status_code == 422


def test_the_privacy_check_is_alg_2(node):
    ok = node.post("/privacy/check", json={"noise_multiplier": 1.0, "epsilon": 5.0})
    assert ok.json()["compliant"] is True
    assert ok.json()["epsilon_actual"] == pytest.approx(4.37718, abs=1e-5)
    missing = node.post("/privacy/check", json={"epsilon": 5.0})
    assert missing.status_code == 422 and "noise_multiplier" in missing.json()["detail"]


def test_a_node_without_a_ledger_says_so(tmp_path):
    with TestClient(create_app(None, None)) as client:
        assert client.get("/health").json() == {"version": "0.1.0", "ledger": False, "store": False}
        reply = client.get("/ledger/accounts")
        assert reply.status_code == 404 and "--ledger" in reply.json()["detail"]
        assert client.get("/storage/stat/x").status_code == 404


def test_bodies_above_an_endpoints_limit_are_refused_with_413(node):
    # The limits are NodeLimits' defaults; tests/node/test_protection.py covers chunked bodies.
    huge = node.post("/ledger/messages", content=b"x" * (2 << 20))
    assert huge.status_code == 413 and huge.json()["error"] == "BodyTooLargeError"
    assert node.post("/privacy/check", content=b" " * (1 << 17)).status_code == 413
    assert node.put(f"/storage/blocks/{cid_of(b'x')}", content=b"x" * (65 << 20)).status_code == 413


def test_a_negative_seed_is_refused(node):
    market = json.loads(dumps_market(running_example()))
    reply = node.post("/clearing/optimal", params={"seed": -1}, json={"market": market})
    assert reply.status_code == 422 and "seed" in reply.json()["detail"]


def test_every_error_is_mercats_json_with_a_status_by_kind(node):
    cases = [
        (node.get("/ledger/journal", params={"limit": 10**30}), 422, "InvalidParameterError"),
        (node.get("/ledger/journal", params={"after": -1}), 422, "InvalidParameterError"),
        (node.get("/ledger/journal", params={"limit": "many"}), 422, "InvalidParameterError"),
        (
            node.post("/clearing/optimal", params={"seed": "abc"}, json={"market": {}}),
            422,
            "InvalidParameterError",
        ),
        (node.get("/ledger/balance/avail:nobody"), 404, "UnknownBookError"),
        (node.get("/no/such/endpoint"), 404, "UnknownEndpointError"),
        (node.delete("/ledger/accounts"), 405, "UnknownEndpointError"),
        (node.post("/ledger/messages", content=b"[" * 100_000), 422, "MalformedMessageError"),
        (node.post("/privacy/check", content=b"[" * 60_000), 422, "InvalidParameterError"),
        (
            node.post("/privacy/check", json={"noise_multiplier": 1.0, "epsilon": 1, "x": 1}),
            422,
            "InvalidParameterError",
        ),
    ]
    for reply, status, error in cases:
        assert reply.status_code == status, (reply.request.url, reply.text)
        assert reply.headers["content-type"] == "application/json"
        assert set(reply.json()) == {"error", "detail"}
        assert reply.json()["error"] == error, reply.text
    assert "seed" in cases[3][0].json()["detail"]
    assert node.delete("/ledger/accounts").headers["allow"] == "GET"


def test_a_failure_of_the_node_is_a_500_without_a_traceback(tmp_path, keys, monkeypatch):
    url = f"sqlite:///{tmp_path}/ledger.db"
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    Ledger.init(url, LedgerConfig(operator=keys["op"].public, rule=rule, unit=1)).close()

    def broken(self):
        raise RuntimeError("secret internals at /srv/node/ledger.py line 42")

    monkeypatch.setattr(Ledger, "assets", broken)
    with TestClient(create_app(url, None), raise_server_exceptions=False) as client:
        reply = client.get("/ledger/assets")
    assert reply.status_code == 500
    assert reply.json() == {
        "error": "InternalError",
        "detail": "the node failed on this request; it was logged",
    }


def test_an_error_quoting_a_huge_input_is_cut_short(node):
    reply = node.post("/privacy/check", json={"noise_multiplier": "x" * 50_000, "epsilon": 1.0})
    assert reply.status_code == 422
    assert len(reply.json()["detail"]) <= 1000 and reply.json()["detail"].endswith("…")


def test_a_database_that_goes_down_under_the_node_is_a_503_with_retry_after(keys, caplog):
    # A PostgreSQL server of its own, killed under the node (not the tests' shared one).
    from mercat.ledger.pgserver import PostgresUnavailable, TemporaryPostgres

    try:
        server = TemporaryPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        url = server.create_database("node")
        rule = IntegerRule(penalty=99, reward=1, removal=True)
        Ledger.init(url, LedgerConfig(operator=keys["op"].public, rule=rule, unit=1)).close()
        with TestClient(create_app(url, None), raise_server_exceptions=False) as client:
            assert client.get("/ledger/accounts").status_code == 200
            server.process.kill()  # the database's server dies under the node
            server.process.wait()
            reply = client.get("/ledger/accounts")
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"] == "LedgerUnavailableError"
            assert reply.json()["detail"].startswith("the node's database is unavailable: ")
            assert reply.headers["retry-after"] == "5"
    finally:
        server.stop()
    assert any("database is unavailable" in r.getMessage() for r in caplog.records)
