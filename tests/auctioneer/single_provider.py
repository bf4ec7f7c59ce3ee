"""One provider in process, on a virtual clock: bid batches in, its round result out.

The virtual clock is also the provider's wall clock: under the schedule (the default
opening), round 0 takes bids from time 0 to `bid_window`, when the batches arrive."""

import asyncio

from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import BidBatch, encode
from mercat.auctioneer.node import ProviderNode
from mercat.auctioneer.transport import InProcessHub
from mercat.auctioneer.virtual_clock import VirtualClockLoop
from mercat.identity import Keypair

PROVIDER_KEY = Keypair(bytes([1]) * 32)


def provider_round(params: ProtocolParams, deliveries: list[tuple[Keypair, BidBatch]], **node):
    """Provider `params.providers[0]` receives each batch, signed by its client's key, in
    order; returns its first round result and its counts of dropped messages. `node` goes
    to `ProviderNode` (sealing_clients, bidder_keys, ...)."""
    (me,) = params.providers

    async def main():
        loop = asyncio.get_running_loop()
        hub = InProcessHub()
        results = []
        provider = ProviderNode(
            me, params, PROVIDER_KEY, {me: PROVIDER_KEY.public}, hub.endpoint(me),
            on_result=results.append, wall_clock=loop.time, **node,
        )  # fmt: skip
        serving = asyncio.ensure_future(provider.serve())
        hub.endpoint("client")
        for key, batch in deliveries:
            hub.deliver("client", me, encode(batch, key.public, key))
        async with asyncio.timeout(params.bid_window + 4 * params.phase_timeout + 1):
            while not results:
                await asyncio.sleep(0.01)
        provider.stop()
        await serving
        return results[0], provider.dropped

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())
