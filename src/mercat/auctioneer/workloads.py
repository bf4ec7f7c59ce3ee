"""Seed 003's experimental markets as bid vectors (the inputs a bidder client sends).

Users `b000001`… (buyers) bid per unit for a demand; the auction's providers `s01`… sell their
capacity (at their unit cost in the double auction, at price 0 in the standard auction,
where providers do not bid). The draws are `mercat.market.generators`' seed-003 set-ups, so the
same seed gives the same market as `mercat generate double-auction|standard-auction`.
"""

from __future__ import annotations

import numpy as np

from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.clearing.base import Seed


def _vector(bids, demands, costs, capacities) -> BidVector:  # type: ignore[no-untyped-def]
    n, m = len(bids), len(costs)
    ids = [f"b{i + 1:06d}" for i in range(n)] + [f"s{j + 1:02d}" for j in range(m)]
    side = np.r_[np.full(n, BUY, np.uint8), np.full(m, SELL, np.uint8)]
    # "b…" < "s…" and zero-padded numbers: the ids come out sorted, as a vector needs
    return BidVector(ids, side, np.r_[bids, costs], np.r_[demands, capacities])


def double_auction_bids(seed: Seed, n_users: int, n_sellers: int = 8) -> BidVector:
    """§6.2: bids U[0.75, 1.25], demands U(0, 1], costs U(0, 1], capacities around D/m."""
    from mercat.market.generators import double_auction_arrays

    a = double_auction_arrays(seed, n_users, n_sellers)
    return _vector(a.bids, a.demands, a.costs, a.capacities)


def standard_auction_bids(seed: Seed, n_users: int, n_sellers: int = 8) -> BidVector:
    """§6.3: the same users; providers offer capacity only (about a quarter of users win)."""
    from mercat.market.generators import standard_auction_arrays

    a = standard_auction_arrays(seed, n_users, n_sellers)
    return _vector(a.bids, a.demands, np.zeros(n_sellers), a.capacities)


def bids_for(mechanism: str, seed: Seed, n_users: int, n_sellers: int = 8) -> BidVector:
    if mechanism == "double":
        return double_auction_bids(seed, n_users, n_sellers)
    return standard_auction_bids(seed, n_users, n_sellers)
