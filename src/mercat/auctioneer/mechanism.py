"""The distributed auctioneer as a clearing mechanism of the round pipeline.

A round's market goes to m providers that together simulate the trusted auctioneer (seed
003): the requests become buy bids (a user's bid per unit and its demand), the servers sell
bids (their unit cost and capacity), the providers agree on the bids, run the auction's task
graph in groups of k+1, and each outputs (x, p). The outcome is the seed's: (x, p) if every
provider output that same pair, else ⊥, and ⊥ clears nothing (no request is served that
round, none pays). The providers here are the real `ProviderNode`s, in one process over an
in-process network (`mercat.auctioneer.simulation`); a market whose providers are separate
processes runs `mercat provider` and `mercat bid` instead.

Because the pipeline only ever snapshots open, unexpired requests, and the ledger opens a
task only for an open request within its terms, an outcome can never serve a request that
was withdrawn or refunded meanwhile.

Options: `auction` ("double": seed 003's double auction on a divisible market, the margin to
the reward pool; "vcg": the standard auction, each user's demand on one provider, payments to
the serving providers), `providers` (m), `k` (resilience; m > 2k), `tie_break` ("index" or
"coin": the common coin breaks the double auction's ties).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.auctioneer.config import MECHANISMS, TIE_BREAKS, ProtocolParams
from mercat.auctioneer.simulation import simulate_rounds
from mercat.clearing.base import Mechanism, Property, Seed, as_generator
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.market.model import Allocation, Clearing, Market


class DistributedAuction(Mechanism):
    """Seed 003's auctions run by m providers instead of a trusted auctioneer."""

    name: ClassVar[str] = "distributed-auction"
    summary: ClassVar[str] = (
        "Seed 003's double or VCG auction, run by m providers simulating the trusted "
        "auctioneer; ⊥ clears nothing"
    )
    properties: ClassVar[frozenset[Property]] = frozenset(
        {Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED}
    )
    margin_holder: ClassVar[str] = "pool"

    def __init__(
        self, auction: str = "double", providers: int = 4, k: int = 1, tie_break: str = "index"
    ) -> None:
        if auction not in MECHANISMS:
            raise InvalidParameterError(
                f"auction must be one of {', '.join(MECHANISMS)}, got {auction!r}"
            )
        if tie_break not in TIE_BREAKS:
            raise InvalidParameterError(
                f"tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}"
            )
        if isinstance(providers, bool) or not isinstance(providers, int) or providers < 1:
            raise InvalidParameterError(f"providers must be an integer >= 1, got {providers!r}")
        self.auction = auction
        self.params = ProtocolParams(
            tuple(f"p{i}" for i in range(providers)),
            k,
            mechanism=auction,
            tie_break=tie_break,
            opening="sealed",
        )
        # The pipeline asks an instance whether its markets are divisible.
        self.divisible = auction == "double"  # type: ignore[misc]

    def check_market(self, market: Market) -> None:
        problems = []
        if len(market.resources) != 1:
            problems.append("the market must have exactly one resource")
        if market.divisible != (self.auction == "double"):
            kind = "divisible" if self.auction == "double" else "indivisible"
            problems.append(f"the {self.auction} auction needs a {kind} market")
        if any(t.replicas != 1 or t.capabilities for t in market.requests):
            problems.append("requests must ask for one replica and no capabilities")
        if any(n.cost or n.capabilities for n in market.nodes):
            problems.append("nodes may have per-unit costs only, and no capabilities")
        if market.conflicts or market.exclusive_nodes:
            problems.append("the auctions know no conflicts or exclusive nodes")
        if problems:
            raise InvalidMarketError(f"{self.name}: " + "; ".join(problems))

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        bids = market_bids(market)
        coin = int(as_generator(seed).integers(2**31))
        [simulated] = simulate_rounds(self.params, [bids], seed=coin)
        outcome = simulated.outcome()
        if outcome is None:  # ⊥: the providers did not all output the same (x, p)
            return Clearing(self.name, Allocation.empty(), diagnostics={"outcome": "⊥"})
        clearing = outcome.to_clearing(bids)
        return Clearing(
            self.name,
            clearing.allocation,
            clearing.payments,
            clearing.rewards,
            diagnostics={"outcome": outcome.digest().hex(), **outcome.facts},
        )


def market_bids(market: Market) -> BidVector:
    """The market as seed 003's bid vector: requests buy, nodes sell (one resource)."""
    ids, sides, prices, quantities = [], [], [], []
    for t in market.requests:
        ids.append(t.id)
        sides.append(BUY)
        prices.append(t.unit_bid)
        quantities.append(t.quantity)
    for n in market.nodes:
        capacity = n.capacity[0]
        if not np.isfinite(capacity):
            capacity = sum(t.quantity for t in market.requests)
        ids.append(n.id)
        sides.append(SELL)
        prices.append(n.unit_costs[0])
        quantities.append(capacity)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return BidVector(
        [ids[i] for i in order],
        np.array([sides[i] for i in order], dtype=np.uint8),
        np.array([prices[i] for i in order], dtype=float),
        np.array([quantities[i] for i in order], dtype=float),
    )
