"""The contract every provider strategy inherits: subclass `ProviderStrategyContract`, name
the class (and, if it needs them, its options):

    class TestUndercut(ProviderStrategyContract):
        strategy = Undercut
        options = {"discount": 0.1}

It checks what the marketplace scenario relies on (`mercat.scenarios.provider_agents`): the
strategy is registered under its name, builds from its options, asks a finite factor in
[0, MAX_ASK_FACTOR] for servers of any cost (zero included), takes every kind of round
report in its `step` hook (no servers, all assigned, all idle), keeps asking valid factors
afterwards, is deterministic (two agents told the same thing ask the same), and runs a few
rounds of the marketplace with its book balanced.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from mercat.scenarios.provider_agents import (
    MAX_ASK_FACTOR,
    PROVIDER_STRATEGIES,
    ProviderStrategy,
    ServerCosts,
    ServerOutcome,
)

_SERVERS = (
    ServerCosts("p1", "p1-gpu1", 1, 0.3, 0.35, 6),
    ServerCosts("p1", "p1-gpu2", 1, 0.0, 0.0, 4),
    ServerCosts("p1", "p1-gpu3", 1, 1e6, 1e6, 8),
)


def _outcomes(assigned: bool, factor: float) -> dict[str, ServerOutcome]:
    return {
        s.server: ServerOutcome(s.server, assigned, 1.0 if assigned else 0.0, factor)
        for s in _SERVERS
    }


class ProviderStrategyContract:
    strategy: ClassVar[type[ProviderStrategy]]
    options: ClassVar[dict[str, Any]] = {}

    def create(self) -> ProviderStrategy:
        return self.strategy(**self.options)

    def assert_valid_asks(self, agent: ProviderStrategy) -> list[float]:
        asks = [agent.ask(s) for s in _SERVERS]
        for factor in asks:
            assert isinstance(factor, int | float) and not isinstance(factor, bool), factor
            assert math.isfinite(factor) and 0 <= factor <= MAX_ASK_FACTOR, factor
        return asks

    def test_registered_under_its_name(self):
        assert isinstance(self.strategy.name, str) and self.strategy.name
        assert isinstance(self.strategy.summary, str) and self.strategy.summary
        assert PROVIDER_STRATEGIES.resolve(self.strategy.name) is self.strategy

    def test_asks_a_valid_factor_before_and_after_every_kind_of_round(self):
        agent = self.create()
        self.assert_valid_asks(agent)
        for round_, outcomes in enumerate(
            [{}, _outcomes(True, 1.0), _outcomes(False, 1.0)] * 5, start=1
        ):
            agent.step(round_, outcomes)
            self.assert_valid_asks(agent)

    def test_two_agents_told_the_same_ask_the_same(self):
        first, second = self.create(), self.create()
        for round_ in range(1, 8):
            assert self.assert_valid_asks(first) == self.assert_valid_asks(second)
            outcomes = _outcomes(round_ % 3 != 0, 1.0)
            first.step(round_, outcomes)
            second.step(round_, outcomes)

    def test_runs_a_marketplace_with_its_book_balanced(self):
        import numpy as np

        from mercat.clearing import registry
        from mercat.incentives.collective import mechanism
        from mercat.runtime.memory import MemoryBook
        from mercat.scenarios.marketplace import MarketSetup, build, summary

        rule = mechanism("coll-sr")
        unit = 10**6
        book = MemoryBook(
            rule.integer_rule(rule.rule(initial_stake=10.0, task_target=0.01), unit),
            unit=unit,
            quorum=2,
        )
        setup = MarketSetup(providers=2, requesters=3)
        market = build(book, registry.resolve("optimal")(), setup, np.random.default_rng(3), rule)
        providers = sorted({p for p, _ in market.true_offers.values()})
        market.provider_strategies = {p: self.create() for p in providers}
        market.run(4)
        book.verify()
        assert sorted(summary(market)["provider_profit"]) == providers
