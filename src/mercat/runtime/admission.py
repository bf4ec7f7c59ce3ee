"""Where a price mechanism meets stake-weighted selection (Coll-Rep, Coll-SR of seed 000).

Seed 000 picks the assets of a task with probability proportional to stake; a price
mechanism picks them by welfare. mercat's rule, when a collective mechanism that weighs by
stake governs a priced market: **stake-weighted admission**. Before the round clears, each
eligible server is admitted to the round's market independently with probability
min(1, stake / reference), where the reference is the stake an asset enters with (S0, the
clamp's cap under Coll-Rep and Coll-SR); the mechanism then clears the market of admitted
servers as it would any other. An asset at full stake is always admitted; one that lost
half its stake to penalties takes part in half the rounds. It is the seed's acceptance test
(accept a uniform pick with probability stake / bound) applied to whole rounds, so the share
of rounds an asset can serve in is proportional to its stake, as the seed's selection
frequency is, and within a round prices still decide.

What it costs and buys is measured by `mercat.scenarios.admission` (welfare against the
task failure rate, with and without admission): penalised assets lose rounds, so failure
falls and welfare falls with the capacity they would have served.

The `collective` mechanism (seed 000's own selection) weighs by stake itself and needs no
admission.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mercat import validation as check
from mercat.market.model import Market
from mercat.runtime.snapshot import RoundMarket


class StakeAdmission:
    """Admit each server with probability min(1, stake / `reference`) (base units)."""

    def __init__(self, reference: int) -> None:
        self.reference = check.integer("reference", reference, minimum=1)

    def admit(self, context: RoundMarket, rng: np.random.Generator) -> RoundMarket:
        market = context.market
        if not market.nodes:
            return context
        draws = rng.random(len(market.nodes))
        kept = tuple(
            node
            for node, u in zip(market.nodes, draws, strict=True)
            if u * self.reference < context.stake(node.id)
        )
        if len(kept) == len(market.nodes):
            return context
        admitted = Market(
            requests=market.requests,
            nodes=kept,
            conflicts=market.conflicts,
            resources=market.resources,
            divisible=market.divisible,
            name=market.name,
        )
        return replace(context, market=admitted)
