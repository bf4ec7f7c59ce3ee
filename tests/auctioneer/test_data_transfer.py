"""Data transfer, Property 5: with |S|, |O| > k, the receivers output v or ⊥, never
another value, whatever up to k members of S send."""

import numpy as np
import pytest

from mercat.auctioneer import data_transfer as dt
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.deviations import EquivocateTransfer, Withhold, WrongTaskResult
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.vcg_tasks import VcgInstance
from mercat.auctioneer.workloads import standard_auction_bids
from mercat.errors import RoundAbortedError

S = ("p0", "p1", "p2")


def test_all_equal_is_accepted():
    assert dt.receive("t", dict.fromkeys(S, b"v"), S) == b"v"


@pytest.mark.parametrize("liar", S)
def test_one_different_value_or_a_missing_one_is_bottom(liar):
    values = dict.fromkeys(S, b"v") | {liar: b"w"}
    with pytest.raises(RoundAbortedError, match="another value"):
        dt.receive("t", values, S)
    values.pop(liar)
    with pytest.raises(RoundAbortedError, match=f"nothing from {liar}"):
        dt.receive("t", values, S)


# End to end, in the VCG instance: 8 providers, k = 1, four payment groups of two.
PARAMS = ProtocolParams(tuple(f"p{i}" for i in range(8)), 1, mechanism="vcg")
BIDS = standard_auction_bids(4, 14, 4)


def test_honest_transfers_gather_every_groups_payments():
    [r] = simulate_rounds(PARAMS, [BIDS], cache={})
    expected = VcgInstance().centralized(BIDS, 0)
    assert all(out.ok and out.outcome == expected for out in r.outputs.values())


@pytest.mark.parametrize("deviation", [WrongTaskResult, EquivocateTransfer, Withhold])
def test_a_member_that_lies_or_is_silent_causes_bottom_not_a_wrong_payment(deviation):
    rng = np.random.default_rng(1)
    extra = {"kind": "transfer"} if deviation is Withhold else {}
    behaviors = {"p2": deviation(PARAMS, "p2", rng, **extra)}  # group 1 = (p2, p3)
    [r] = simulate_rounds(PARAMS, [BIDS], behaviors=behaviors, cache={})
    expected = VcgInstance().centralized(BIDS, 0)
    outside = [r.outputs[p] for p in PARAMS.providers if p not in ("p2", "p3")]
    for out in outside:
        assert out.outcome is None or out.outcome == expected
    assert any(not out.ok and "payments/1" in out.reason for out in outside)
    assert r.outputs["p3"].outcome == expected  # p3 computed group 1's payments itself
