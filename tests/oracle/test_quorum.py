"""Signed oracle reports and the q-of-n quorum."""

from __future__ import annotations

import pytest

from mercat.errors import (
    BadSignatureError,
    ConflictingQuorumError,
    DuplicateReportError,
    MalformedMessageError,
    QuorumNotReachedError,
    UnknownOracleError,
)
from mercat.identity import Keypair
from mercat.oracle import OracleReport, QuorumRule, SignedReport, tally

ORACLES = [Keypair.generate() for _ in range(5)]
SET = {k.public for k in ORACLES}


def sign(i: int, success: bool = True, latency: int = 100, sla: bool = True, task: str = "t"):  # type: ignore[no-untyped-def]
    return SignedReport.sign(OracleReport(1, task, success, sla, latency), ORACLES[i])


def test_q_of_n_agree_and_the_rest_are_named_as_dissenting():
    reports = [sign(0, latency=300), sign(1, latency=100), sign(2, False), sign(3, latency=200)]
    verdict = tally(reports, SET, QuorumRule(3))
    assert verdict.success and verdict.sla_met
    assert verdict.latency_ms == 200  # lower median of 100, 200, 300
    assert verdict.agreeing == (ORACLES[0].public, ORACLES[1].public, ORACLES[3].public)
    assert verdict.disagreeing == (ORACLES[2].public,)


def test_sla_verdict_and_digest_are_part_of_agreement():
    a = sign(0)
    b = sign(1, sla=False)
    with pytest.raises(QuorumNotReachedError):
        tally([a, b], SET, QuorumRule(2))
    c = SignedReport.sign(OracleReport(1, "t", True, True, 100, "cid-1"), ORACLES[2])
    with pytest.raises(QuorumNotReachedError):
        tally([a, c], SET, QuorumRule(2))


def test_rejections():
    with pytest.raises(UnknownOracleError):
        tally([SignedReport.sign(OracleReport(1, "t", True, True, 1), Keypair.generate())], SET,
              QuorumRule(1))  # fmt: skip
    forged = sign(0)
    forged = SignedReport(forged.report, ORACLES[1].public, forged.signature)
    with pytest.raises(BadSignatureError):
        tally([forged], SET, QuorumRule(1))
    with pytest.raises(DuplicateReportError):
        tally([sign(0), sign(0, latency=5)], SET, QuorumRule(1))
    with pytest.raises(MalformedMessageError):
        tally([sign(0), sign(1, task="u")], SET, QuorumRule(1))
    with pytest.raises(ConflictingQuorumError):
        tally([sign(0), sign(1), sign(2, False), sign(3, False)], SET, QuorumRule(2))
    with pytest.raises(QuorumNotReachedError):
        tally([], SET, QuorumRule(1))


def test_wire_form_round_trips_and_refuses_malformed_reports():
    report = sign(4)
    assert SignedReport.from_wire(report.to_wire()) == report
    bad = {**report.to_wire(), "latency_ms": 1.5}
    with pytest.raises(MalformedMessageError):
        SignedReport.from_wire(bad)
    with pytest.raises(MalformedMessageError):
        SignedReport.from_wire({**report.to_wire(), "extra": 1})
