"""Market-maker strategies for seed 001's posted-price mechanism, and their registry.

A strategy is a small class with a `name`, a `summary` and one decision method, `propose`:
given what it sees (`MakerView`: its beliefs about values and costs, the mechanism, the
current standing), return a proposal or None (pass). An optional hook, `beliefs`, says what
the maker believes the market's values and costs are; the dynamics runner calls it once per
run with the maker's own random generator.

- `perfect-information`: the seed's profit maximiser. It knows every value and cost and
  plays the exact best response to the standing (HiGHS; see `posted_price_response`).
- `noisy-estimates`: the same best response, computed on estimates: every request value and
  node cost (fixed and per unit) is the true one times a mean-one log-normal factor
  exp(σ·Z - σ²/2), drawn once per run. Its proposals can overcharge a request or underpay
  a node, and then, if they clear, the market fails and it pays the penalty γ.

`MAKERS` lists mercat's strategies explicitly (`mercat dynamics` and `posted-price` read
the registry); tests/clearing/posted_price/test_posted_price_makers.py checks that each is
registered, documented in docs/posted-price.md and uniquely named. Strategies outside mercat
are plug-ins: an entry point in the group `mercat.market_makers`, `register(MyMaker)`, or
`--strategy mypkg.mod:MyMaker` (docs/workbench.md).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from mercat.clearing.posted_price.certificate import CertifiedResponder
from mercat.clearing.posted_price.proposal import Proposal, Standing
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import SequentialImprovement
from mercat.market.model import Market
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry
from mercat.validation import non_negative

MAX_MAKERS = 1000
"""The most market-makers of one run of the dynamics (each best-responds by a MILP a turn)."""


@dataclass
class MakerView:
    """What a maker sees when it is its turn."""

    maker: str  # its id in this run
    beliefs: Market  # the market as it believes it to be
    mechanism: SequentialImprovement
    standing: Standing
    tick: float
    memory: dict[str, Any] = field(default_factory=dict)  # private to (maker, run)
    # Computation that makers of one run may share: solver state that depends only on the
    # beliefs (two makers with the same beliefs solve the same MILPs), never a decision.
    shared: dict[Any, Any] = field(default_factory=dict)


class MarketMaker(ABC):
    """A market-maker strategy: subclasses set `name` and `summary` and write `propose`."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def beliefs(self, market: Market, rng: np.random.Generator) -> Market:
        """The market as this maker believes it (default: the truth)."""
        return market

    @abstractmethod
    def propose(self, view: MakerView) -> Proposal | None:
        """A proposal for the current standing, or None to pass."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ProfitMaximiser(MarketMaker):
    """Best response to the standing on the maker's beliefs; `certify=False` solves every
    response from scratch (the readable reference of the certified fast path). A base for
    the strategies below, not a strategy of its own: it has no name."""

    def __init__(self, certify: bool = True) -> None:
        self.certify = bool(certify)

    def responder(self, view: MakerView) -> BestResponder:
        """The maker's best-response solver for this run (kept in its memory)."""
        responder = view.memory.get("responder")
        if responder is None:
            if self.certify:
                responder = CertifiedResponder(
                    view.beliefs, view.mechanism, view.maker, view.tick, shared=view.shared
                )
            else:
                responder = BestResponder(view.beliefs, view.mechanism, view.maker, view.tick)
            view.memory["responder"] = responder
        return responder

    def propose(self, view: MakerView) -> Proposal | None:
        offer = self.responder(view).respond(view.standing)
        return None if offer is None else offer.proposal


class PerfectInformation(ProfitMaximiser):
    """Seed 001's market-maker: knows every value and cost, plays the exact best response."""

    name = "perfect-information"
    summary = "knows values and costs; exact best response to the current best (HiGHS)"


class NoisyEstimates(ProfitMaximiser):
    """Best response on log-normal estimates of values and costs (mean one, spread σ)."""

    name = "noisy-estimates"
    summary = "exact best response on estimates: each value and cost × exp(σZ - σ²/2)"

    def __init__(self, sigma: float = 0.1, certify: bool = True) -> None:
        super().__init__(certify)
        self.sigma = float(non_negative("sigma", sigma))

    def beliefs(self, market: Market, rng: np.random.Generator) -> Market:
        def noisy(x: float) -> float:
            return float(x * math.exp(self.sigma * rng.standard_normal() - self.sigma**2 / 2))

        requests = tuple(replace(t, value=noisy(t.value)) for t in market.requests)
        nodes = tuple(
            replace(n, cost=noisy(n.cost), unit_costs=tuple(noisy(c) for c in n.unit_costs))
            for n in market.nodes
        )
        return replace(market, requests=requests, nodes=nodes)

    def __repr__(self) -> str:
        return f"NoisyEstimates(sigma={self.sigma:g})"


MAKERS: tuple[type[MarketMaker], ...] = (PerfectInformation, NoisyEstimates)


REGISTRY = ClassRegistry(
    "market-maker strategy", MAKERS, group=GROUPS["market-maker strategy"], base=MarketMaker
)
makers = REGISTRY.by_name
names = REGISTRY.names
get = REGISTRY.get
resolve = REGISTRY.resolve
create = REGISTRY.create
register = REGISTRY.register
unregister = REGISTRY.unregister
