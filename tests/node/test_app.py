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
    Escrow,
    FundPool,
    IntegerRule,
    Keypair,
    Ledger,
    LedgerConfig,
    OpenAccount,
    OpenTask,
    Settle,
    Signer,
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
    operator, A, B = Signer(op), Signer(alice), Signer(bob)
    for message in [
        A.sign(OpenAccount()),
        B.sign(OpenAccount()),
        operator.sign(AddOracle(oracle=oracle.public)),
        operator.sign(Deposit(account=alice.public, amount=5_000)),
        operator.sign(Deposit(account=bob.public, amount=5_000)),
        operator.sign(Deposit(account=op.public, amount=1_000)),
        operator.sign(FundPool(amount=1_000)),
        A.sign(AddAsset(asset="gpu-1", stake=990)),
        B.sign(Escrow(request="job", amount=300)),
        operator.sign(
            OpenTask(round=1, task="t1", request="job", assets=("gpu-1",), payouts=(120,))
        ),
    ]:
        reply = post_message(node, message)
        assert reply.status_code == 200, reply.text
        assert reply.json()["applied"] is True
    report = SignedReport.sign(OracleReport(1, "t1", True, True, 80), oracle)
    assert (
        post_message(node, operator.sign(Settle(round=1, task="t1", reports=(report,)))).status_code
        == 200
    )
    balance = node.get(f"/ledger/balance/avail:{alice.public}").json()["balance"]
    assert balance == 4130  # the documented example's numbers, over HTTP
    assert [a["id"] for a in node.get("/ledger/assets").json()] == ["gpu-1"]
    assert node.get("/ledger/verify").json()["ok"] is True
    assert len(node.get("/ledger/journal", params={"limit": 3}).json()) == 3


def test_ledger_refusals_are_json_with_the_right_status(node, keys):
    alice, bob = Signer(keys["alice"]), Signer(keys["bob"])
    assert post_message(node, alice.sign(OpenAccount())).status_code == 200
    broke = post_message(node, alice.sign(Escrow(request="job", amount=10)))
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
    huge = node.post("/ledger/messages", content=b"x" * (2 << 20))
    assert huge.status_code == 413 and huge.json()["error"] == "BodyTooLargeError"
    assert node.post("/privacy/check", content=b" " * (1 << 17)).status_code == 413
    assert node.put(f"/storage/blocks/{cid_of(b'x')}", content=b"x" * (65 << 20)).status_code == 413


def test_a_negative_seed_is_refused(node):
    market = json.loads(dumps_market(running_example()))
    reply = node.post("/clearing/optimal", params={"seed": -1}, json={"market": market})
    assert reply.status_code == 422 and "seed" in reply.json()["detail"]


def test_slow_work_does_not_stall_other_requests(node, monkeypatch):
    import threading
    import time

    from mercat.privacy import accountant

    real = accountant.check_differential_privacy

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(accountant, "check_differential_privacy", slow)
    worker = threading.Thread(
        target=node.post,
        args=("/privacy/check",),
        kwargs={"json": {"noise_multiplier": 1.0, "epsilon": 5.0}},
    )
    worker.start()
    time.sleep(0.3)
    start = time.monotonic()
    assert node.get("/health").status_code == 200
    waited = time.monotonic() - start
    worker.join()
    assert waited < 1.0  # on the event loop, the check would hold /health for its 1.5 s
