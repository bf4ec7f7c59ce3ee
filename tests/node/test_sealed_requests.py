"""Sealed requests (mercat.node.sealing): the requester's keys reach only the providers its
tasks are assigned to, in a grant the node checks and relays but cannot open; grants that
may not be made are refused in one line and change nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from fastapi.testclient import TestClient

from mercat import errors as e
from mercat.identity import Keypair
from mercat.node.app import create_app
from mercat.node.sealing import KeyGrant, SignedGrant, grant_for, open_grant, request_keys
from mercat.runtime.terms import RequestTerms
from mercat.storage.encryption import (
    decrypt_deterministic,
    encrypt_deterministic,
    new_key,
    seal_key,
)

from .market_fixtures import board_with_task, small_market

BOTH = ("inputs", "output")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("sealed-template")
    return root, small_market(root, sealed=BOTH)


@pytest.fixture
def market(tmp_path, template):
    root, built = template
    shutil.copy(root / "ledger.db", tmp_path / "ledger.db")
    m = dataclasses.replace(built, url=f"sqlite:///{tmp_path}/ledger.db")
    board_with_task(tmp_path / "board.db", m).close()
    app = create_app(m.url, tmp_path / "store", board=tmp_path / "board.db")
    with TestClient(app) as client:
        m.client = client
        yield m


def task_view(m):
    return m.client.get("/market/tasks/1/t1").json()


def grant(m, signer=None, asset="gpu-1", **changes):
    signer = signer or m.bob
    good = grant_for(m.bob, m.ledger_id, task_view(m), "gpu-1", frozenset(BOTH)).grant
    fields = {**dataclasses.asdict(good), "asset": asset, **changes}
    return SignedGrant.sign(KeyGrant(**fields), signer)


def post(m, signed):
    return m.client.post("/market/keys", json=signed.to_wire())


def test_a_sealed_request_says_so_on_the_ledger_and_the_board(market):
    view = task_view(market)
    assert view["sealed"] == ["inputs", "output"] and view["granted"] == []
    terms = market.client.get("/market/requests/job1").json()["terms"]
    assert terms["sealed"] == ["inputs", "output"]
    # a request in the clear signs as it always did: no `sealed` field on its wire form
    assert "sealed" not in RequestTerms("r", max_price=1).to_wire()
    with pytest.raises(e.MalformedMessageError, match=r"request\.sealed"):
        RequestTerms("r", max_price=1, sealed=["weights"])


def test_the_requesters_grant_reaches_its_provider_and_no_one_else(market):
    reply = post(market, grant(market))
    assert reply.status_code == 200, reply.text
    assert task_view(market)["granted"] == ["gpu-1"]
    relayed = market.client.get("/market/tasks/1/t1/keys", params={"asset": "gpu-1"}).json()
    signed = SignedGrant.from_wire(relayed[0])
    opened = open_grant(signed, task_view(market), market.alice)
    keys = request_keys(market.bob, "job1")
    assert (opened.inputs, opened.output) == (keys.inputs, keys.output)
    # the operator (who runs the node), an oracle, the requester's own identity: none opens it
    for other in (market.operator, market.oracles[0], Keypair.generate()):
        with pytest.raises(e.UnauthorizedError):  # not addressed to them
            open_grant(signed, task_view(market), other)
        with pytest.raises(e.DecryptionError, match="does not open"):
            from mercat.storage.encryption import open_sealed

            open_sealed(signed.grant.inputs_key, other)
    # a grant the node altered (its own key, sealed to the provider) is not the requester's
    forged = SignedGrant(
        dataclasses.replace(signed.grant, inputs_key=seal_key(new_key(), market.alice.public)),
        signed.requester, signed.signature,
    )  # fmt: skip
    with pytest.raises(e.BadSignatureError):
        open_grant(forged, task_view(market), market.alice)


def test_a_wrong_key_fails_cleanly():
    key, wrong = new_key(), new_key()
    blob = encrypt_deterministic(b"model bytes", key)
    assert blob == encrypt_deterministic(b"model bytes", key)  # replicas agree by CID
    assert blob != encrypt_deterministic(b"model bytes", wrong)
    assert decrypt_deterministic(blob, key) == b"model bytes"
    with pytest.raises(e.DecryptionError, match="wrong key"):
        decrypt_deterministic(blob, wrong)
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(e.DecryptionError):
        decrypt_deterministic(altered, key)


def _oversized(m):
    wire = grant(m).to_wire()
    wire["task"] = "t1" + " " * 5000  # valid JSON, far past a grant's size
    return m.client.post("/market/keys", content=json.dumps(wire))


def _short_box(m):
    wire = grant(m).to_wire()
    wire["inputs_key"] = wire["inputs_key"][:-2]
    return m.client.post("/market/keys", json=wire)


def _forged(m):
    wire = grant(m).to_wire()
    wire["asset"] = "gpu-2"
    return m.client.post("/market/keys", json=wire)


@pytest.mark.parametrize(
    ("make", "status", "error"),
    [
        (lambda m: post(m, grant(m, signer=m.alice)), 403, "UnauthorizedError"),  # not its own
        (lambda m: post(m, grant(m, asset="gpu-7")), 403, "UnauthorizedError"),  # not a server
        (lambda m: post(m, grant(m, recipient=m.bob.public)), 403, "UnauthorizedError"),
        (lambda m: post(m, grant(m, ledger="cd" * 16)), 409, "WrongLedgerError"),
        (lambda m: post(m, grant(m, task="t9")), 404, "UnknownTaskError"),
        (lambda m: post(m, grant(m, output_key=None)), 422, "MalformedMessageError"),
        (_forged, 403, "BadSignatureError"),
        (_oversized, 413, "BodyTooLargeError"),
        (_short_box, 422, "MalformedMessageError"),
        (lambda m: m.client.post("/market/keys", content=b"{"), 422, "MalformedMessageError"),
        (lambda m: m.client.post("/market/keys", json={"task": "t1"}), 422,
         "MalformedMessageError"),
    ],
)  # fmt: skip
def test_grants_that_may_not_be_made_are_refused_and_change_nothing(market, make, status, error):
    reply = make(market)
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == error and "\n" not in body["detail"]
    assert task_view(market)["granted"] == []
    assert market.client.get("/market/tasks/1/t1/keys").json() == []


def test_a_second_grant_for_one_replica_is_refused(market):
    assert post(market, grant(market)).status_code == 200
    again = post(market, grant(market))
    assert again.status_code == 409 and again.json()["error"] == "AlreadyExistsError"
