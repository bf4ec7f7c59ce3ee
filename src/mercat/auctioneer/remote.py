"""The distributed auctioneer as separate processes, clearing a node's rounds.

`DistributedAuction` (`mercat.auctioneer.mechanism`) runs seed 003's m providers inside the
node's process. `AuctioneerProcesses` clears the same way, bid for bid, but the m providers
are `mercat provider` processes (`mercat.auctioneer.process`) named by a peers file, as
`mercat auctioneer local` runs them: each round the node sends the market's bids to every
provider with the bidder client (`mercat.auctioneer.client`, ZeroMQ), as the round's
*sealing client* (the peers file's `opening = "sealed"`: the node's batch opens the
auction's round and closes it, so rounds run when the node's round loop wants them, not by
a clock), and takes the outcome seed 003 defines: (x, p) if every provider output that same
pair, ⊥ otherwise (⊥ clears nothing that round, as in-process).

It is not in the registry of mechanisms: a peers file and a key file are paths on the
node's machine, which no one on the network may choose (`mercat serve --auctioneer-peers`
and `--auctioneer-key` set them; `mercat devnet up --auctioneer-processes` starts the
providers beside the agents).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from mercat.auctioneer.client import BidderClient
from mercat.auctioneer.config import PeersFile, load_peers
from mercat.auctioneer.mechanism import DistributedAuction, market_bids
from mercat.clearing.base import Seed
from mercat.errors import InvalidParameterError
from mercat.identity import Keypair
from mercat.market.model import Allocation, Clearing, Market


def peers_for_node(peers: str | Path, key: Keypair) -> PeersFile:
    """The peers file a node clears with, checked: readable, valid, and naming the node's
    key as a sealing client (`mercat serve` calls it before it listens)."""
    peers_file = load_peers(Path(peers))
    if peers_file.params.opening != "sealed" or key.public not in peers_file.sealing_clients:
        raise InvalidParameterError(
            f"{peers}: the node clears rounds as their sealing client: the peers file needs "
            "opening = 'sealed' with the node's auctioneer key among its sealing_clients"
        )
    return peers_file


class AuctioneerProcesses(DistributedAuction):
    """See the module docstring."""

    def __init__(self, peers: str | Path, key: Keypair, timeout: float | None = None) -> None:
        peers_file = peers_for_node(peers, key)
        params = peers_file.params
        super().__init__(params.mechanism, params.m, params.k, params.tie_break)
        self.params = params
        self.peers = peers_file
        self.key = key
        # long enough for a round that ends in ⊥ by the providers' own timeouts
        self.timeout = timeout or 3 * params.phase_timeout + params.task_timeout + 5.0
        self._client: BidderClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # one round at a time
        self._last_round = 0

    def _next_round(self) -> int:
        # Fresh ids, increasing across node restarts (milliseconds since 1970): a provider
        # answers a round it already ran from its result log, never runs it again.
        self._last_round = max(self._last_round + 1, int(time.time() * 1000))
        return self._last_round

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        bids = market_bids(market)
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._client = BidderClient(self.peers, self.key)
            assert self._client is not None
            round_id = self._next_round()
            seen = self._loop.run_until_complete(
                self._client.run_round(round_id, bids, self.timeout)
            )
        facts = {"auctioneer": "processes", "auction_round": round_id,
                 "auction_seconds": round(seen.seconds, 3)}  # fmt: skip
        if seen.outcome is None or not seen.ok:  # ⊥, or the providers missed the bids
            reason = seen.reason or seen.status
            return Clearing(self.name, Allocation.empty(),
                            diagnostics={"outcome": "⊥", "reason": reason, **facts})  # fmt: skip
        clearing = seen.outcome.to_clearing(bids)
        return Clearing(
            self.name,
            clearing.allocation,
            clearing.payments,
            clearing.rewards,
            diagnostics={"outcome": seen.outcome.digest().hex(), **seen.outcome.facts, **facts},
        )

    def close(self) -> None:
        with self._lock:
            if self._loop is not None and self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            if self._loop is not None:
                self._loop.close()
            self._client = self._loop = None
