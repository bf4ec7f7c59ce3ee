"""`posted-price`: seed 001's mechanism, cleared by simulated competing market-makers.

The mechanism itself (attempt 4 of seed 001: sequential Pareto improvements with payment
tolerances, `mercat.clearing.posted_price.template.ToleranceImprovement`) knows no values
or costs; it only compares proposals. To clear a market file, mercat simulates the
market-makers the seed assumes: by default two perfect-information profit maximisers who
know the values and costs in the file. They take turns best-responding to the current best
(`mercat.clearing.posted_price.dynamics.run_dynamics`) until a whole round changes nothing;
the final current best is settled against the true values and costs (a proposal that is not
individually rational fails and its maker pays γ) and returned.

What to expect (seed 001's claim, measured in docs/posted-price.md): the allocation is
welfare-maximising and the margin is zero, up to the price tick: makers improve prices in
steps of `tick`, so the final margin is at most (participants)·tick and the welfare is within
about as much of the optimum. The clearing carries no certificate of its own (`bound` is
None): the mechanism never sees the welfare it maximises.
"""

from __future__ import annotations

from collections.abc import Sequence

from mercat.clearing.base import Mechanism, Property, Seed
from mercat.clearing.posted_price.dynamics import DEFAULT_PENALTY, DEFAULT_TICK, run_dynamics
from mercat.clearing.posted_price.makers import (
    MAX_MAKERS,
    MarketMaker,
    NoisyEstimates,
    PerfectInformation,
)
from mercat.clearing.posted_price.makers import get as get_strategy
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.market.model import Clearing, Market
from mercat.validation import integer, non_negative, positive

DEFAULT_MAX_ROUNDS = 100_000


class PostedPrice(Mechanism):
    """Seed 001 attempt 4 with simulated market-makers best-responding until no one improves."""

    name = "posted-price"
    summary = (
        "seed 001 attempt 4 (Pareto improvements with tolerances): simulated market-makers "
        "best-respond until no one improves"
    )
    properties = frozenset({Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED})

    def __init__(
        self,
        makers: int | Sequence[str] = 2,
        *,
        tick: float = DEFAULT_TICK,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        specialization: bool = False,
        penalty: float = DEFAULT_PENALTY,
        sigma: float = 0.1,
    ) -> None:
        if isinstance(makers, int) and not isinstance(makers, bool):
            count = integer("makers", makers, minimum=1)
            if count > MAX_MAKERS:
                raise InvalidParameterError(f"makers must be at most {MAX_MAKERS}, got {count}")
            self.strategies: tuple[str, ...] = (PerfectInformation.name,) * count
        elif isinstance(makers, Sequence) and not isinstance(makers, str) and makers:
            self.strategies = tuple(get_strategy(name).name for name in makers)
        else:
            raise InvalidParameterError(
                f"makers must be a count or a list of strategy names, got {makers!r}"
            )
        self.tick = float(positive("tick", tick))
        self.max_rounds = integer("max_rounds", max_rounds, minimum=1)
        self.specialization = bool(specialization)
        self.penalty = float(non_negative("penalty", penalty))
        self.sigma = float(non_negative("sigma", sigma))

    def check_market(self, market: Market) -> None:
        if market.divisible:
            raise InvalidMarketError(
                "posted-price clears indivisible markets (seed 001's α: T → 2^N); "
                "this market is divisible"
            )

    def make_makers(self) -> list[MarketMaker]:
        makers: list[MarketMaker] = []
        for name in self.strategies:
            if name == NoisyEstimates.name:
                makers.append(NoisyEstimates(self.sigma))
            else:
                makers.append(get_strategy(name)())
        return makers

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        trace = run_dynamics(
            market,
            self.make_makers(),
            attempt=4,
            specialization=self.specialization,
            rounds=self.max_rounds,
            tick=self.tick,
            penalty=self.penalty,
            seed=seed,
        )
        settled = trace.settlement
        standing = trace.standing
        return Clearing(
            mechanism=self.name,
            allocation=settled.allocation,
            payments=settled.payments,
            rewards=settled.rewards,
            diagnostics={
                "attempt": 4,
                "makers": list(self.strategies),
                "tick": self.tick,
                "specialization": self.specialization,
                "converged": trace.converged,
                "cycle": None if trace.cycle is None else list(trace.cycle),
                "rounds": trace.rounds,
                "proposals": trace.proposals,
                "milp_solves": trace.milp_solves,
                "certified_responses": trace.details.get("certified_responses", 0),
                "holders": list(standing.holders()),
                "standing_margin": standing.margin,
                "payoffs": settled.payoffs,
                "failed": list(settled.failed),
                "ir_failures": list(settled.reasons),
            },
        )
