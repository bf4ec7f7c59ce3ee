"""Provider strategies: each one's asks and learning, the contract on mercat's three, the
marketplace posting the asks and counting each provider's profit at its true cost."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mercat.clearing import registry
from mercat.errors import InvalidParameterError, UnknownNameError
from mercat.incentives.collective import mechanism
from mercat.runtime.memory import MemoryBook
from mercat.scenarios.marketplace import MarketSetup, build, summary
from mercat.scenarios.provider_agents import (
    PROVIDER_STRATEGIES,
    AdaptiveMarkup,
    FixedMarkup,
    ProviderStrategy,
    ServerCosts,
    ServerOutcome,
    TruthfulAsk,
    provider_strategy,
)
from mercat.testing.provider_strategy import ProviderStrategyContract

SERVER = ServerCosts("p", "p-gpu1", 1, 0.2, 0.3, 4)


class TestTruthful(ProviderStrategyContract):
    strategy = TruthfulAsk


class TestMarkup(ProviderStrategyContract):
    strategy = FixedMarkup
    options: ClassVar[dict[str, Any]] = {"markup": 0.5}


class TestAdaptiveMarkup(ProviderStrategyContract):
    strategy = AdaptiveMarkup


def _outcome(assigned: bool) -> dict[str, ServerOutcome]:
    return {"p-gpu1": ServerOutcome("p-gpu1", assigned, 0.0, 1.0)}


def test_fixed_markup_asks_above_cost_by_its_markup():
    assert FixedMarkup(0.25).ask(SERVER) == pytest.approx(1.25)
    assert TruthfulAsk().ask(SERVER) == 1.0


def test_adaptive_markup_rises_when_assigned_and_falls_when_idle_within_its_bounds():
    agent = AdaptiveMarkup(start=0.2, up=2.0, down=0.5, floor=0.05, cap=0.6)
    agent.step(1, _outcome(True))
    assert agent.ask(SERVER) == pytest.approx(1.4)
    agent.step(2, _outcome(True))
    assert agent.ask(SERVER) == pytest.approx(1.6)  # capped
    for round_ in range(3, 10):
        agent.step(round_, _outcome(False))
    assert agent.ask(SERVER) == pytest.approx(1.05)  # floored
    agent.step(10, {})  # a round without servers teaches nothing
    assert agent.ask(SERVER) == pytest.approx(1.05)


@pytest.mark.parametrize(
    ("name", "options"),
    [("markup", {"markup": -0.1}), ("adaptive-markup", {"up": 0.9}), ("markup", {"bogus": 1})],
)
def test_bad_options_are_one_line_errors(name, options):
    with pytest.raises(InvalidParameterError) as info:
        provider_strategy(name, **options)
    assert "\n" not in str(info.value)


def test_an_unknown_strategy_is_named():
    with pytest.raises(UnknownNameError, match="provider strategy"):
        provider_strategy("nope")


def _market(strategy: ProviderStrategy | None, seed: int = 5):
    rule = mechanism("coll-sr")
    unit = 10**6
    book = MemoryBook(
        rule.integer_rule(rule.rule(initial_stake=10.0, task_target=0.01), unit),
        unit=unit,
        quorum=2,
    )
    market = build(book, registry.resolve("optimal")(), MarketSetup(), np.random.default_rng(seed))
    if strategy is not None:
        market.provider_strategies = {p: strategy for p, _ in market.true_offers.values()}
    return market, book


def test_the_marketplace_posts_each_servers_ask_at_its_factor_of_the_true_cost():
    market, book = _market(FixedMarkup(0.5))
    market.post_asks(1)
    for server, (_, true) in market.true_offers.items():
        posted = book.assets[server].offer
        assert posted.cost == round(true.cost * 1.5)
        assert dict(posted.unit_costs)["gpu"] == round(dict(true.unit_costs)["gpu"] * 1.5)


def test_a_markup_earns_a_provider_more_than_its_true_cost_and_truthful_asks_change_nothing():
    plain, _ = _market(None)
    plain.run(6)
    truthful, _ = _market(TruthfulAsk())
    truthful.run(6)
    assert summary(plain)["per_round"] == summary(truthful)["per_round"]
    marked, book = _market(FixedMarkup(1.0))
    marked.run(6)
    book.verify()
    profit = summary(marked)["provider_profit"]
    truthful_profit = summary(plain)["provider_profit"]
    assert sum(profit.values()) > sum(truthful_profit.values())


def test_a_strategy_asking_nonsense_is_a_one_line_error():
    class Broken(ProviderStrategy):
        name = "broken"
        summary = "asks infinity"

        def ask(self, server):
            return float("inf")

    market, _ = _market(Broken())
    with pytest.raises(InvalidParameterError, match="finite factor"):
        market.post_asks(1)


def test_the_registry_lists_the_three():
    assert PROVIDER_STRATEGIES.names()[:3] == ["truthful", "markup", "adaptive-markup"]
