"""A provider's bid intake: late, conflicting and invalid bids become ⊥ there, and the bid
agreement makes every provider treat such a bidder alike."""

import numpy as np

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import BidBatch
from mercat.auctioneer.node import merge_batches
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.workloads import double_auction_bids
from mercat.identity import Keypair
from tests.auctioneer.single_provider import provider_round


def batch(*bids, final=False):
    return BidBatch(0, BidVector.from_bids(bids), final)


def test_merging_batches_drops_conflicts_and_invalid_bids():
    a1, a2 = Bid("a", "buy", 1.0, 1.0), Bid("a", "buy", 2.0, 1.0)
    b = Bid("b", "sell", 0.5, 2.0)
    merged = merge_batches([batch(a1, b), batch(a2), batch(b)])
    assert merged.ids == ("b",)  # a sent two different bids here: ⊥; b twice alike: kept
    invalid = BidVector(["c"], np.array([0], np.uint8), np.array([-1.0]), np.array([1.0]))
    assert len(merge_batches([BidBatch(0, invalid)])) == 0
    assert merge_batches([]) == BidVector.empty()


def test_a_bid_missing_at_some_providers_is_treated_alike_everywhere():
    params = ProtocolParams(("p0", "p1", "p2", "p3", "p4"), 2)
    bids = double_auction_bids(3, 12, 3)
    late = Bid("b999999", "buy", 5.0, 1.0)  # reaches p0 and p1 only (late or lost elsewhere)
    with_late = BidVector.from_bids([*bids.bids(), late])
    vectors = {p: (with_late if p in ("p0", "p1") else bids) for p in params.providers}
    [r] = simulate_rounds(params, [vectors])
    assert all(out.ok and out.agreed == bids for out in r.outputs.values())
    vectors = {p: (with_late if p != "p4" else bids) for p in params.providers}  # 4 of 5
    [r] = simulate_rounds(params, [vectors])
    assert all(out.ok and out.agreed == with_late for out in r.outputs.values())


def test_bids_after_a_provider_closed_bidding_are_late():
    """The sealing client's final batch closes bidding at once; a bid sent afterwards is
    dropped as late and the round goes on without it."""
    params = ProtocolParams(("p0",), 0, opening="sealed")
    sealer, other = Keypair(bytes([2]) * 32), Keypair(bytes([3]) * 32)
    bids = double_auction_bids(1, 6, 2)
    extra = BidVector.from_bids([Bid("late", "buy", 9.0, 1.0)])  # queued after the final
    result, dropped = provider_round(
        params,
        [(sealer, BidBatch(0, bids, final=True)), (other, BidBatch(0, extra))],
        sealing_clients=[sealer.public],
    )
    assert result.ok and result.agreed == bids
    assert dropped.get("late-bids") == 1
