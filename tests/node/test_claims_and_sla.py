"""Outcome claims (signed, bound to a ledger, strict on the wire) and the SLA rule every
oracle and the node's executor apply alike (mercat.node.sla)."""

from __future__ import annotations

import pytest

from mercat.errors import BadSignatureError, MalformedMessageError
from mercat.identity import Keypair
from mercat.node.claims import OutcomeClaim, SignedClaim
from mercat.node.sla import Timing, judge

LEDGER = "ab" * 16


def test_a_claim_verifies_and_survives_the_wire():
    key = Keypair.generate()
    signed = SignedClaim.sign(OutcomeClaim(LEDGER, 3, "t1", "gpu-1", True, "bafkreiabc", 120), key)
    signed.verify()
    again = SignedClaim.from_wire(signed.to_wire())
    assert again == signed
    again.verify()


@pytest.mark.parametrize(
    "change",
    [{"success": False, "output": None}, {"round": 4}, {"asset": "gpu-2"}, {"ledger": "cd" * 16}],
)
def test_a_claim_changed_after_signing_does_not_verify(change):
    signed = SignedClaim.sign(OutcomeClaim(LEDGER, 3, "t1", "gpu-1", True, "bafkreiabc", 120),
                              Keypair.generate())  # fmt: skip
    wire = {**signed.to_wire(), **change}
    with pytest.raises(BadSignatureError):
        SignedClaim.from_wire(wire).verify()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"success": True, "output": None}, "names its output"),
        ({"output": "not a cid!"}, "CID"),
        ({"run_ms": -1}, "run_ms"),
        ({"round": 1.5}, "round"),
        ({"error": "x" * 201}, "200 printable"),
        ({"signature": "zz"}, "signature"),
        ({"extra": 1}, "exactly the fields"),
        ({"ledger": "short"}, "ledger id"),
        ({"owner": "not a key"}, "64 lowercase hex"),
    ],
)
def test_malformed_claims_are_refused(change, message):
    wire = SignedClaim.sign(OutcomeClaim(LEDGER, 3, "t1", "gpu-1", True, "bafkreiabc", 120),
                            Keypair.generate()).to_wire()  # fmt: skip
    with pytest.raises(MalformedMessageError, match=message):
        SignedClaim.from_wire({**wire, **change})


TIMING = Timing(grace_ms=1000, no_deadline_ms=60_000)


def test_a_task_is_judged_once_complete_or_past_its_cutoff():
    servers = ["a", "b"]
    one = {"a": (True, "cid1", 1500)}
    assert judge(servers, one, 1000, 5000, TIMING, now_ms=6000) is None  # waiting for b
    missing = judge(servers, one, 1000, 5000, TIMING, now_ms=7001)  # cutoff: 1000 + 5000 + 1000
    assert missing is not None and not missing.success and "no claim from b" in missing.reason
    both = {**one, "b": (True, "cid1", 2500)}
    done = judge(servers, both, 1000, 5000, TIMING, now_ms=2600)
    assert done is not None and done.success and done.sla_met and done.output == "cid1"
    assert done.latency_ms == 1500  # the last claim's arrival minus the opening


def test_replicas_that_disagree_fail_the_task():
    claims = {"a": (True, "cid1", 1500), "b": (True, "cid2", 1600)}
    verdict = judge(["a", "b"], claims, 1000, 5000, TIMING, now_ms=2000)
    assert verdict is not None and not verdict.success and "differ" in verdict.reason


def test_a_late_claim_counts_until_the_cutoff_and_not_after():
    late = judge(["a"], {"a": (True, "cid", 6500)}, 1000, 5000, TIMING, now_ms=7000)
    assert late is not None and late.success and not late.sla_met and "late" in late.reason
    after = judge(["a"], {"a": (True, "cid", 7500)}, 1000, 5000, TIMING, now_ms=8000)
    assert after is not None and not after.success  # past the cutoff: as if it never came


def test_a_failed_replica_fails_the_task_and_no_deadline_means_a_long_cutoff():
    failed = judge(["a", "b"], {"a": (False, None, 1200), "b": (True, "c", 1300)}, 1000, 0,
                   TIMING, now_ms=1400)  # fmt: skip
    assert failed is not None and not failed.success and "a failed" in failed.reason
    assert judge(["a"], {}, 1000, 0, TIMING, now_ms=60_000) is None
    assert judge(["a"], {}, 1000, 0, TIMING, now_ms=61_001) is not None
