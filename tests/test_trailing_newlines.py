"""An id followed by a newline is refused wherever mercat checks ids from outside.

Python's `re` lets `$` match before a final "\\n", so `re.match(r"^[a-z]+$", "asset\\n")`
succeeds: checks written that way let "asset\\n" through as an id of its own, one that
prints as "asset" and splits whatever line it is written into. The checks use `fullmatch`;
each entry point below is held to refusing the newline (and to accepting the id without it).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mercat.auctioneer.bids import Bid, BidVector
from mercat.chain.market import ChainMarket
from mercat.errors import (
    InvalidParameterError,
    InvalidWorkloadError,
    MalformedMessageError,
)
from mercat.identity import Keypair
from mercat.ledger.messages import AddAsset, SettleTasks, Signer, TaskReports, build, parse
from mercat.node.app import create_app
from mercat.node.claims import OutcomeClaim
from mercat.node.sealing import KeyGrant, request_keys
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from mercat.workloads import archive
from mercat.workloads.spec import parse as parse_workload

LEDGER = "0123456789abcdef" * 2
KEY = Keypair.generate()


def test_ledger_messages_refuse_an_id_with_a_newline():
    build("add_asset", {"asset": "srv", "stake": 1})
    with pytest.raises(MalformedMessageError, match=r"add_asset\.asset must be"):
        build("add_asset", {"asset": "srv\n", "stake": 1})
    # The same id inside a signed message: the ledger parses it before anything else.
    signer = Signer(KEY, LEDGER)
    assert parse(signer.sign(AddAsset("srv", 1))).op == AddAsset("srv", 1)
    with pytest.raises(MalformedMessageError, match=r"add_asset\.asset must be"):
        parse(signer.sign(AddAsset("srv\n", 1)))
    with pytest.raises(MalformedMessageError, match=r"settlements\[0\]\.task must be"):
        parse(signer.sign(SettleTasks(round=1, settlements=(TaskReports("t\n", ()),))))


@pytest.mark.parametrize(
    "field, value",
    [("task", "t\n"), ("digest", "bafy\n"), ("ledger", LEDGER + "\n")],
)
def test_oracle_reports_refuse_a_field_with_a_newline(field, value):
    good = OracleReport(round=1, task="t", success=True, sla_met=True, latency_ms=5,
                        digest="bafy", ledger=LEDGER)  # fmt: skip
    with pytest.raises(MalformedMessageError, match=field):
        dataclasses.replace(good, **{field: value})
    wire = SignedReport.sign(good, KEY).to_wire()
    with pytest.raises(MalformedMessageError, match=field):
        SignedReport.from_wire({**wire, field: value})


def test_request_offer_and_task_terms_refuse_an_id_with_a_newline():
    RequestTerms("job", max_price=1, assets=["srv"], workload="toy")
    for bad in (
        {"request": "job\n"},
        {"assets": ["srv\n"]},
        {"inputs": ["bafy\n"]},
        {"workload": "toy\n"},
        {"capabilities": ["gpu\n"]},
        {"demand": {"gpu\n": 1}},
    ):
        with pytest.raises(MalformedMessageError):
            RequestTerms(**{"request": "job", "max_price": 1, **bad})
    Offer("srv", cid="bafy")
    for bad in ({"asset": "srv\n"}, {"cid": "bafy\n"}, {"capacity": {"gpu\n": 1}}):
        with pytest.raises(MalformedMessageError):
            Offer(**{"asset": "srv", **bad})
    task = TaskTerms("t", "job", ("srv",), (1,), 1).to_wire()
    TaskTerms.from_wire(task)
    for bad in ({"task": "t\n"}, {"request": "job\n"}, {"assets": ["srv\n"]}):
        with pytest.raises(MalformedMessageError):
            TaskTerms.from_wire({**task, **bad})


def test_claims_and_key_grants_refuse_a_field_with_a_newline():
    claim = OutcomeClaim(LEDGER, 1, "t", "srv", True, output="bafy", error="ok")
    for field, value in [
        ("ledger", LEDGER + "\n"), ("task", "t\n"), ("asset", "srv\n"),
        ("output", "bafy\n"), ("error", "ok\n"),
    ]:  # fmt: skip
        with pytest.raises(MalformedMessageError, match=field):
            dataclasses.replace(claim, **{field: value})
    request_keys(KEY, "job")
    with pytest.raises(MalformedMessageError, match="request must be"):
        request_keys(KEY, "job\n")
    with pytest.raises(MalformedMessageError, match=r"grant\.ledger"):
        KeyGrant(LEDGER + "\n", 1, "t", "srv", KEY.public, bytes(80), None)
    with pytest.raises(MalformedMessageError, match=r"grant\.inputs_key"):
        KeyGrant(LEDGER, 1, "t", "srv", KEY.public, "00" * 80 + "\n", None)


def test_auctioneer_bids_refuse_a_bidder_with_a_newline():
    Bid("alice", "buy", 1.0, 1.0)
    with pytest.raises(InvalidParameterError, match="bidder id"):
        Bid("alice\n", "buy", 1.0, 1.0)
    with pytest.raises(InvalidParameterError, match="bad bidder id"):
        BidVector.from_arrays(["alice\n"], np.zeros(1), np.ones(1), np.ones(1))
    sections = BidVector.from_bids([Bid("alice", "buy", 1.0, 1.0)]).sections()
    assert list(BidVector.decode(*sections).ids) == ["alice"]
    with pytest.raises(MalformedMessageError, match="bidder ids"):
        BidVector.decode(sections[0] + b"\n", *sections[1:])


def test_the_chain_facade_refuses_a_name_with_a_newline():
    market = ChainMarket(None, "0x" + "11" * 20, {}, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="asset must be"):
        market.register_asset("0x" + "22" * 20, "srv\n", 1)


def test_workloads_refuse_a_name_or_member_with_a_newline():
    with pytest.raises(InvalidWorkloadError, match="unknown workload"):
        parse_workload("toy\n")
    data = archive.dump("dataset", {"x": np.zeros(2)})
    assert archive.load(data)[0] == "dataset"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("kind.npy\n", b"")
    with pytest.raises(InvalidWorkloadError, match=r"is not NAME\.npy"):
        archive.load(out.getvalue())


def test_the_nodes_query_patterns_refuse_a_trailing_newline():
    """pydantic checks `pattern=` with Rust's regex, where `$` is the end of the text: the
    node's patterns keep their `^...$` form and still refuse "job\\n"."""
    with TestClient(create_app(None, None)) as client:
        for query in ("request=job%0A", "assignee=srv%0A", "after=1/t%0A", "order=oldest%0A"):
            reply = client.get(f"/market/tasks?{query}")
            assert reply.status_code == 422, (query, reply.text)
        assert client.get("/market/tasks?request=job").status_code != 422
        assert client.get("/market/tasks/1/t%0A").status_code == 422
        assert client.get("/market/tasks/1/t").status_code != 422
