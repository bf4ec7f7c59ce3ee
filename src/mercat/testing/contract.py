"""The contract every clearing mechanism inherits: subclass `MechanismContract`, name the
mechanism, and (if it needs a special kind of market) override `make_market`.

    class TestMyMechanism(MechanismContract):
        mechanism = MyMechanism

Checked on `n_markets` seeded markets: the mechanism is registered under its name and
documented; clearing is reproducible from a seed; the allocation is valid; and every
property the mechanism declares (`Mechanism.properties`) holds: individual rationality,
budget balance, zero margin, welfare maximisation (against brute force or, for divisible
markets, the optimal LP), truthfulness (sampled misreports do not pay in expectation).

Shipped with mercat so that a plug-in mechanism runs it on itself (`from
mercat.testing.contract import MechanismContract`); a plug-in used only as `module:Class`,
never registered, sets `registered = False`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mercat.clearing import registry
from mercat.clearing.base import Mechanism, Property
from mercat.clearing.optimal import solve_welfare
from mercat.market.brute_force import best_allocation
from mercat.market.constraints import is_valid
from mercat.market.economics import budget_balanced, ir_violations, margin, non_extractive, welfare
from mercat.market.generators import random_market
from mercat.market.model import Market
from mercat.testing.truthfulness import misreport_gains, misreports_pay


class MechanismContract:
    mechanism: ClassVar[type[Mechanism]]
    options: ClassVar[dict[str, Any]] = {}
    registered: ClassVar[bool] = True  # found by name (built in, entry point or register())
    n_markets: ClassVar[int] = 10
    misreport_samples: ClassVar[int] = 200

    def make_market(self, rng: np.random.Generator) -> Market:
        """A market this mechanism accepts; the default exercises every constraint kind."""
        return random_market(rng, int(rng.integers(1, 7)), int(rng.integers(1, 5)), max_replicas=2)

    # --- helpers ---------------------------------------------------------------------

    def create(self) -> Mechanism:
        return self.mechanism(**self.options)

    @pytest.fixture(scope="class")
    @classmethod
    def cleared(cls) -> list[tuple[Market, Any]]:
        """`n_markets` seeded markets and their clearings, computed once per test class."""
        contract = cls()
        out = []
        for i in range(cls.n_markets):
            market = contract.make_market(np.random.default_rng(10_000 + i))
            out.append((market, contract.create().clear(market, seed=i)))
        return out

    def requires(self, prop: Property) -> None:
        if prop not in self.mechanism.properties:
            pytest.skip(f"{self.mechanism.name} does not declare {prop}")

    # --- the contract ----------------------------------------------------------------

    def test_registered_under_its_name(self):
        if self.registered:
            assert registry.get(self.mechanism.name) is self.mechanism
        assert issubclass(self.mechanism, Mechanism)
        assert self.mechanism.__doc__ and self.mechanism.summary

    def test_reproducible_from_seed(self):
        market = self.make_market(np.random.default_rng(7))
        first = self.create().clear(market, seed=3)
        again = self.create().clear(market, seed=3)
        assert first == again
        assert first.mechanism == self.mechanism.name

    def test_allocation_is_valid(self, cleared):
        for market, result in cleared:
            validity = is_valid(market, result.allocation)
            assert validity, validity.reasons

    def test_payments_name_only_participants(self, cleared):
        for market, result in cleared:
            assert set(result.payments) <= set(market.request_by_id)
            assert set(result.rewards) <= set(market.node_by_id)

    def test_certificate_is_consistent(self, cleared):
        for market, result in cleared:
            if result.bound is not None:
                assert result.bound >= welfare(market, result.allocation) - 1e-6
                assert result.gap is not None and result.gap >= 0

    def test_individually_rational(self, cleared):
        self.requires(Property.INDIVIDUALLY_RATIONAL)
        for market, result in cleared:
            assert not ir_violations(market, result.allocation, result.payments, result.rewards)

    def test_budget_balanced(self, cleared):
        self.requires(Property.BUDGET_BALANCED)
        for _, result in cleared:
            assert budget_balanced(result.payments, result.rewards), margin(
                result.payments, result.rewards
            )

    def test_zero_margin(self, cleared):
        self.requires(Property.ZERO_MARGIN)
        for _, result in cleared:
            assert budget_balanced(result.payments, result.rewards)
            assert non_extractive(result.payments, result.rewards)

    def test_welfare_maximising(self, cleared):
        self.requires(Property.WELFARE_MAXIMISING)
        for market, result in cleared:
            achieved = welfare(market, result.allocation)
            if market.divisible:
                best = solve_welfare(market).welfare
            else:
                best, _ = best_allocation(market)
            assert achieved == pytest.approx(best, rel=1e-6, abs=1e-9)
            assert result.proven

    def test_truthful(self):
        self.requires(Property.TRUTHFUL)
        rng = np.random.default_rng(2024)
        markets = [self.make_market(np.random.default_rng(20_000 + i)) for i in range(20)]
        gains = misreport_gains(self.create(), markets, rng, self.misreport_samples)
        pays, p_value = misreports_pay(gains)
        assert not pays, f"misreports gain on average (p = {p_value:.2g}, max {gains.max():.3g})"
