"""A provider's bid intake: late, conflicting and invalid bids become ⊥ there, and the bid
agreement makes every provider treat such a bidder alike."""

import numpy as np

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import BidBatch
from mercat.auctioneer.node import merge_batches
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.workloads import double_auction_bids


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
    import asyncio

    from mercat.auctioneer.messages import encode
    from mercat.auctioneer.node import ProviderNode
    from mercat.auctioneer.transport import InProcessHub
    from mercat.auctioneer.virtual_clock import VirtualClockLoop
    from mercat.identity import Keypair

    params = ProtocolParams(("p0",), 0)
    key, sealer, other = (Keypair(bytes([i]) * 32) for i in (1, 2, 3))
    bids = double_auction_bids(1, 6, 2)

    async def main():
        hub = InProcessHub()
        results = []
        node = ProviderNode(
            "p0", params, key, {"p0": key.public}, hub.endpoint("p0"),
            sealing_clients=[sealer.public], on_result=results.append,
        )  # fmt: skip
        serving = asyncio.ensure_future(node.serve())
        hub.endpoint("c")
        hub.deliver("c", "p0", encode(BidBatch(0, bids, final=True), sealer.public, sealer))
        extra = BidVector.from_bids([Bid("late", "buy", 9.0, 1.0)])  # queued after the final
        hub.deliver("c", "p0", encode(BidBatch(0, extra), other.public, other))
        while not results:
            await asyncio.sleep(0.01)
        node.stop()
        await serving
        return results[0], node.dropped

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        result, dropped = runner.run(main())
    assert result.ok and result.agreed == bids
    assert dropped.get("late-bids") == 1
