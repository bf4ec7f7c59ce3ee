"""The clearing protocol: a small class with a `name` and one method, `clear`.

A mechanism maps a market to a `Clearing` (allocation α, payments π, rewards φ and a welfare
certificate). It declares, as class metadata, the properties it guarantees; the inherited
contract tests (tests/clearing/contract.py) check each declared property on generated
markets, so a declaration is a promise that is tested, not a label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import ClassVar

import numpy as np

from mercat.market.model import Clearing, Market

Seed = int | np.random.Generator | None
"""Randomness enters as a seed or a numpy Generator; None means 'no randomness needed'."""


class Property(StrEnum):
    """Guarantees a mechanism can declare (checked by the contract tests)."""

    INDIVIDUALLY_RATIONAL = "individually-rational"  # every utility ≥ 0
    BUDGET_BALANCED = "budget-balanced"  # margin ≥ 0
    ZERO_MARGIN = "zero-margin"  # margin = 0
    WELFARE_MAXIMISING = "welfare-maximising"  # W(α) = max over V
    TRUTHFUL = "truthful"  # misreporting a value or a cost never pays (in expectation)


class Mechanism(ABC):
    """A clearing mechanism. Subclasses set `name`, `summary`, `properties`, write `clear`.

    Constructor arguments hold the mechanism's options (time limits, tolerances); `clear`
    must be a pure function of (market, seed): the same inputs give the same clearing.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    properties: ClassVar[frozenset[Property]] = frozenset()
    # What the round pipeline needs to know of a mechanism (mercat.runtime): whether it
    # clears divisible markets (requests split across nodes), and who keeps its margin: the
    # operator's account for a market-maker's margin, the collective reward pool for an
    # auction's.
    divisible: ClassVar[bool] = False
    margin_holder: ClassVar[str] = "operator"

    def check_market(self, market: Market) -> None:  # noqa: B027 - optional hook, no-op default
        """Raise `InvalidMarketError` if this mechanism cannot clear this kind of market."""

    @abstractmethod
    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        """Choose α ∈ V and prices (π, φ) for the market."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def as_generator(seed: Seed) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator (returned as is) or None (seed 0)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(0 if seed is None else seed)
