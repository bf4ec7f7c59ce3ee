"""The readable reference for a market-maker's best response: try every α ∈ V.

`best_offer_by_enumeration` prices every valid allocation of the market with `offer_for` and
keeps the one that earns the maker most. It is the definition of a best response written as
a search, feasible only on small markets (`mercat.market.brute_force`'s limit); the HiGHS best
response (`mercat.clearing.posted_price.response`) is tested against it.

Ties: the holder's own allocation (a re-proposal) first, then the enumeration order.
"""

from __future__ import annotations

from mercat.clearing.posted_price.pricing import Offer, offer_for
from mercat.clearing.posted_price.proposal import Interference, Standing
from mercat.clearing.posted_price.template import SequentialImprovement
from mercat.market.brute_force import valid_allocations
from mercat.market.model import Market

GAIN_TOL = 1e-9
"""Gains within this of each other are ties; a best gain at most this is not worth proposing."""


def best_offer_by_enumeration(
    beliefs: Market,
    standing: Standing,
    mechanism: SequentialImprovement,
    maker: str,
    tick: float,
) -> Offer | None:
    """The most profitable winning offer over all of V, or None if none gains anything."""
    table = Interference.of(beliefs)
    best: Offer | None = None
    candidates = [m.allocation for m in standing.members] if len(standing.members) == 1 else []
    candidates += list(valid_allocations(beliefs))
    for allocation in candidates:
        offer = offer_for(beliefs, allocation, standing, mechanism, maker, tick, table)
        if offer is not None and (best is None or offer.gain > best.gain + GAIN_TOL):
            best = offer
    if best is None or best.gain <= GAIN_TOL:
        return None
    return best
