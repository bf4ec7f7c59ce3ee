"""Sealed requests (mercat.node.sealing): the requester's keys reach only the providers its
tasks are assigned to, in a grant the node checks and relays but cannot open; grants that
may not be made are refused in one line and change nothing."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time

import pytest

from mercat import errors as e
from mercat.identity import Keypair
from mercat.ledger import Ledger
from mercat.node.agent import ProviderAgent, ServerSpec
from mercat.node.genesis import UNIT, DevnetSetup, provider_plan
from mercat.node.local_market import LocalMarket
from mercat.node.oracle_service import OracleService
from mercat.node.requester import Requester
from mercat.node.sealing import KeyGrant, SignedGrant, grant_for, open_grant, request_keys
from mercat.runtime.terms import RequestTerms
from mercat.storage.encryption import (
    decrypt_deterministic,
    encrypt_deterministic,
    new_key,
    open_sealed,
    seal_key,
)
from mercat.workloads import datasets, sandbox

from .market_fixtures import served_copy, small_market

BOTH = ("inputs", "output")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("sealed-template")
    return root, small_market(root, sealed=BOTH)


@pytest.fixture
def market(tmp_path, template):
    with served_copy(*template, tmp_path) as m:
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


def _poll(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _watch_all(requester, names, timeout: float):
    """Follow several requests at once, handing each one's keys over as its tasks open."""
    outcomes = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(names) and time.monotonic() < deadline:
        for name in set(names) - set(outcomes):
            outcome = requester.outcome(name)
            if outcome.status != "open":
                outcomes[name] = outcome
            requester.hand_over_keys(outcome)
        time.sleep(0.2)
    return outcomes


@pytest.mark.slow
def test_a_sealed_task_runs_end_to_end_and_only_its_providers_read_it(tmp_path):
    setup = DevnetSetup(providers=2, servers_per_provider=1, oracles=3, requesters=1, rounds=4,
                        round_seconds=0.0, failure_prone=0.0, steady_failure_rate=0.0,
                        model_asset=False, sample_rate=1.0)  # fmt: skip
    market = LocalMarket(setup, tmp_path)
    market.start(participants=False)
    try:
        for i, key in enumerate(market.keys.providers):
            servers, _ = provider_plan(setup, i)
            agent = ProviderAgent(market.client(), key, servers, workdir=str(tmp_path))
            agent.register()
            market._spawn(f"agent{i}", agent.run)
        for i, key in enumerate(market.keys.oracles):
            oracle = OracleService(market.client(), key, sample_rate=1.0, workdir=str(tmp_path))
            market.oracles.append(oracle)
            market._spawn(f"oracle{i}", oracle.run)
        node = market.client()
        requester = Requester(node, market.keys.requesters[0])
        data = datasets.classification(200, 4, seed=2)
        submit = functools.partial(requester.submit, "train-logreg:steps=50", [data],
                                   max_price=3 * UNIT, deadline_ms=30_000, seal_inputs=True,
                                   seal_output=True)  # fmt: skip
        # the requester grants a key that is not the request's: its provider fails cleanly
        wrong = submit(request="sealed-wrong-key")
        task = _poll(lambda: node.tasks(request=wrong)["tasks"], 120, "the task to open")[0]
        server = next(a for a in task["assets"] if a["kind"] == "server")
        bad = KeyGrant(node.ledger_id, task["round"], task["task"], server["asset"],
                       server["owner"], seal_key(new_key(), server["owner"]),
                       seal_key(new_key(), server["owner"]))  # fmt: skip
        node.post_json("/market/keys", SignedGrant.sign(bad, requester.key).to_wire())
        one = submit(request="sealed-one")
        two = submit(request="sealed-two", replicas=2)  # both providers: equal ciphertexts
        outcomes = _watch_all(requester, [one, two, wrong], 240)

        for name in (one, two):
            outcome = outcomes[name]
            assert outcome.status == "closed" and outcome.paid, outcome.tasks[0]["note"]
            model = requester.result(outcome)
            # the provider ran the workload on the plaintext: the model it gives in the clear
            assert (
                model
                == sandbox.Sandbox(sandbox.Limits()).run("train-logreg:steps=50", [data]).output
            )
            stored = node.get(outcome.output)  # what the node and every peer hold
            assert stored != model and stored.startswith(b"MCDET001")
        claims = outcomes[two].tasks[0]["claims"]
        assert len(claims) == 2 and claims[0]["output"] == claims[1]["output"]

        # the node's store holds the inputs as ciphertext only
        task = outcomes[one].tasks[0]
        stored_input = node.get(task["inputs"][0])
        assert stored_input.startswith(b"MCENC001") and data[:64] not in stored_input
        # the provider not assigned to it, the node's operator and the oracles hold a box
        # they cannot open
        assigned = {a["owner"] for a in task["assets"] if a["kind"] == "server"}
        others = [k for k in market.keys.providers if k.public not in assigned]
        grant = SignedGrant.from_wire(node.get_json(f"/market/tasks/1/{task['task']}/keys")[0])
        for other in [*others, market.keys.operator, *market.keys.oracles]:
            with pytest.raises(e.DecryptionError):
                open_sealed(grant.grant.inputs_key, other)
        assert others  # one provider of two ran it

        failed = outcomes[wrong]
        assert failed.status == "closed" and not failed.paid
        assert "cannot decrypt" in failed.tasks[0]["claims"][0]["error"]
        # sampled sealed tasks were not re-executed, and the oracles say so
        # (each paid task was judged by at least a quorum, 2 of 3; the third oracle may not
        # have reached it before it settled)
        assert sum(o.stats.sealed_unchecked for o in market.oracles) >= 2 * 2
        assert all(o.stats.re_executed == 0 for o in market.oracles)
    finally:
        market.close()
    with Ledger(market.ledger_url) as ledger:
        ledger.verify()


class _NodeWithoutGrants:
    """A node on which the requester never grants the keys; records the claims sent."""

    ledger_id = "ab" * 16

    def __init__(self):
        self.claims = []
        self.asked = threading.Event()

    def get_json(self, path, **params):
        self.asked.set()
        return []

    def claim(self, signed):
        self.claims.append(signed)


def test_an_agent_stopped_while_it_waits_for_its_keys_claims_nothing():
    node = _NodeWithoutGrants()
    agent = ProviderAgent(node, Keypair.generate(), [ServerSpec("gpu-1", stake=1)])
    stop = threading.Event()
    agent._stop = stop  # what run(stop) sets
    task = {"round": 1, "task": "t1", "workload": "train-logreg:steps=5", "inputs": [],
            "sealed": ["inputs"], "opened_ms": int(time.time() * 1000),
            "deadline_ms": 3_600_000, "claims": [], "requester": "cd" * 32}  # fmt: skip
    worker = threading.Thread(target=agent._guarded, args=(task, "gpu-1", 0.0))
    worker.start()
    assert node.asked.wait(60)  # it is waiting for the grant
    stop.set()
    worker.join(60)
    assert not worker.is_alive() and node.claims == []  # a restarted agent runs it
    assert agent.stats.errors == []
