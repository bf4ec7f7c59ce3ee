"""The framework's instantiations (seed 003 §5.2): which algorithm A, cut into which tasks.

- "double": the double auction of §5.2.1, the project's `double-auction` mechanism
  (`mercat.clearing.double_auction.trade_reduction`, sorted water-filling with trade
  reduction). A is cheap (a sort), so the graph is one task that every provider runs and
  no data transfer happens, as in the seed. With `tie_break = "coin"` equal bids are
  ordered by a random priority drawn from the round's common coin (the seed's "whenever
  providers need a random number ... they invoke the common coin"): the mechanism's
  `tie_break="random"` with the coin as its seed, which the outcome publishes
  (`facts["coin_seed"]`) so that anyone can re-run A on the agreed bids.
- "vcg": the standard auction of §5.2.2 (`mercat.auctioneer.vcg_tasks`): the allocation by
  every provider, the Clarke payments split across c groups of at least k+1 providers,
  gathered by data transfer into a final task that every provider runs.

Each instance also gives `centralized(bids, seed)`: the same A run whole in one process, the
trusted auctioneer that Definition 1 compares the distributed output with.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.task_graph import Task, TaskGraph
from mercat.errors import AuctioneerConfigError


class Instance(ABC):
    """An algorithm A as a task graph over the agreed bids."""

    name: ClassVar[str]

    @abstractmethod
    def graph(self, bids: BidVector, params: ProtocolParams, seed: int) -> TaskGraph:
        """The task graph of A on `bids`, for the providers and groups of `params`."""

    @abstractmethod
    def centralized(
        self, bids: BidVector, seed: int, params: ProtocolParams | None = None
    ) -> Outcome:
        """A on `bids` in one process (the trusted auctioneer), with the mechanism options
        of `params` (its `vcg_gap`), if given."""


def published_seed(outcome: Outcome) -> int:
    """The coin seed an outcome says A used (`facts["coin_seed"]`), 0 if it used none: with
    it anyone can re-run A on the agreed bids and compare."""
    seed = outcome.facts.get("coin_seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def graph_key(name: str, bids: BidVector, params: ProtocolParams, seed: int) -> bytes:
    """Identifies a graph's inputs: equal keys, equal task results."""
    h = hashlib.sha256(name.encode() + b"\x00")
    h.update(bids.digest())
    h.update(params.digest())
    h.update(seed.to_bytes(8, "little"))
    return h.digest()


# --- the double auction ----------------------------------------------------------------


def double_auction_arrays(
    bids: BidVector,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buyers, sellers, unit bids, demands, unit costs, capacities) exactly as
    `DoubleAuction.clear` computes them from the market of these bids: a buyer's value is
    price·quantity (`Request.bidding`) and its unit bid value/quantity; capacities are
    capped at the total demand."""
    buyers = np.flatnonzero(bids.side == BUY)
    sellers = np.flatnonzero(bids.side == SELL)
    demands = bids.quantity[buyers].astype(float)
    values = bids.price[buyers] * demands
    unit = np.divide(values, demands, out=np.zeros_like(values), where=demands > 0)
    costs = bids.price[sellers].astype(float)
    capacities = np.minimum(bids.quantity[sellers].astype(float), float(demands.sum()))
    return buyers, sellers, unit, demands, costs, capacities


def double_auction_outcome(bids: BidVector, coin_seed: int | None = None) -> Outcome:
    """The project's double auction on the agreed bids, as an Outcome. With a `coin_seed`,
    ties are broken at random from it exactly as `DoubleAuction(tie_break="random")
    .clear(market, seed=coin_seed)` breaks them on the market of these bids."""
    from mercat.clearing.double_auction import random_priorities, trade_reduction

    buyers, sellers, unit, demands, costs, capacities = double_auction_arrays(bids)
    priorities = (
        {} if coin_seed is None else random_priorities(len(buyers), len(sellers), coin_seed)
    )
    result = trade_reduction(unit, demands, costs, capacities, **priorities)
    transfers = np.zeros(len(bids))
    traded_users = np.flatnonzero(result.user_amount > 0)
    traded_providers = np.flatnonzero(result.provider_amount > 0)
    # The same products as `clearing_from` (price per unit times the amount traded; numpy's
    # float64 product is Python's, bit for bit).
    transfers[buyers[traded_users]] = result.buyer_price * result.user_amount[traded_users]
    transfers[sellers[traded_providers]] = -(
        result.seller_price * result.provider_amount[traded_providers]
    )
    return Outcome(
        "double-auction",
        bids.ids,
        buyers[result.plan_users],
        sellers[result.plan_providers],
        result.plan_amounts,
        transfers,
        facts={
            "buyer_price": result.buyer_price,
            "seller_price": result.seller_price,
            "traded_quantity": result.traded_quantity,
            "welfare": result.welfare,
            "efficient_welfare": result.efficient_welfare,
            **({} if coin_seed is None else {"coin_seed": coin_seed}),
        },
    )


class DoubleAuctionInstance(Instance):
    """One task, run by every provider: the seed's double auction never transfers data."""

    name = "double"

    def graph(self, bids: BidVector, params: ProtocolParams, seed: int) -> TaskGraph:
        coin_seed = self.coin_seed(seed, params)
        task = Task(
            "clear",
            params.providers,
            lambda _inputs: double_auction_outcome(bids, coin_seed),
            heavy=False,
        )
        return TaskGraph((task,), "clear", graph_key(self.name, bids, params, seed))

    def centralized(
        self, bids: BidVector, seed: int, params: ProtocolParams | None = None
    ) -> Outcome:
        return double_auction_outcome(bids, self.coin_seed(seed, params))

    @staticmethod
    def coin_seed(seed: int, params: ProtocolParams | None) -> int | None:
        """The coin's seed where ties are broken by it, else None (by index)."""
        return seed if params is not None and params.tie_break == "coin" else None


def instance_for(name: str) -> Instance:
    if name == "double":
        return DoubleAuctionInstance()
    if name == "vcg":
        from mercat.auctioneer.vcg_tasks import VcgInstance

        return VcgInstance()
    raise AuctioneerConfigError(f"unknown mechanism {name!r}; known: double, vcg")
