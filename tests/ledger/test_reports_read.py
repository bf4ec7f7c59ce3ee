"""`Ledger.oracle_reports`: the signed reports a ledger holds, with their status, readable
and verifiable by anyone (a node tallies quorums with them before it settles)."""

from __future__ import annotations

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
    Report,
    RequestTerms,
    Settle,
    Signer,
    TaskTerms,
)
from mercat.oracle import OracleReport, SignedReport


def test_reports_come_back_signed_with_their_status(tmp_path):
    op, alice, bob, *oracles = (Keypair.generate() for _ in range(6))
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    config = LedgerConfig(operator=op.public, rule=rule, unit=1, quorum=2)
    ledger = Ledger.init(f"sqlite:///{tmp_path}/l.db", config, durable=False)
    OP, A, B = (Signer(k, ledger.id) for k in (op, alice, bob))
    for message in [
        A.sign(OpenAccount()), B.sign(OpenAccount()),
        *(OP.sign(AddOracle(oracle=k.public)) for k in oracles),
        OP.sign(Deposit(account=alice.public, amount=5000)),
        OP.sign(Deposit(account=bob.public, amount=5000)),
        OP.sign(Deposit(account=op.public, amount=1000)), OP.sign(FundPool(amount=1000)),
        A.sign(AddAsset(asset="gpu-1", stake=990)),
        A.sign(PostOffer(offer=Offer("gpu-1", capacity={"gpu": 8}, cost=100))),
        B.sign(PostRequest(terms=RequestTerms("job", max_price=300, demand={"gpu": 2}))),
        OP.sign(OpenTasks(round=1, tasks=(TaskTerms("t1", "job", ("gpu-1",), (120,), 150),))),
    ]:  # fmt: skip
        ledger.submit(message)

    def signed(key, success):
        return SignedReport.sign(OracleReport(1, "t1", success, True, 80, None, ledger.id), key)

    honest, liar = signed(oracles[0], True), signed(oracles[1], False)
    ledger.submit(A.sign(Report(report=honest)))
    ledger.submit(A.sign(Report(report=liar)))
    pending = ledger.oracle_reports(1, status="pending")
    assert {r.oracle for r, _ in pending} == {oracles[0].public, oracles[1].public}
    for report, _ in pending:
        report.verify()  # the signature the ledger kept still verifies
    ledger.submit(OP.sign(Settle(round=1, task="t1", reports=(signed(oracles[2], True),))))
    statuses = {r.oracle: status for r, status in ledger.oracle_reports(1, ["t1"])}
    assert statuses == {
        oracles[0].public: "agree",
        oracles[1].public: "disagree",
        oracles[2].public: "agree",
    }
    assert ledger.oracle_reports(1, []) == []
    assert ledger.oracle_reports(2) == []


def test_requests_are_read_by_owner_id_and_status(tmp_path):
    op, alice, bob = (Keypair.generate() for _ in range(3))
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    ledger = Ledger.init(f"sqlite:///{tmp_path}/l.db", LedgerConfig(operator=op.public, rule=rule,
                         unit=1), durable=False)  # fmt: skip
    OP, A, B = (Signer(k, ledger.id) for k in (op, alice, bob))
    for message in [A.sign(OpenAccount()), B.sign(OpenAccount()),
                    OP.sign(Deposit(account=alice.public, amount=5000)),
                    OP.sign(Deposit(account=bob.public, amount=5000))]:  # fmt: skip
        ledger.submit(message)
    for signer, name in [(A, "a1"), (B, "b1"), (A, "a2")]:
        ledger.submit(signer.sign(PostRequest(terms=RequestTerms(name, max_price=10))))
    assert [r.request for r in ledger.request_records(owner=alice.public)] == ["a1", "a2"]
    assert [r.request for r in ledger.request_records(ids=["b1", "zz"])] == ["b1"]
    assert [r.request for r in ledger.request_records("open", limit=2)] == ["a1", "b1"]
    assert ledger.request_records("closed", owner=bob.public) == []
