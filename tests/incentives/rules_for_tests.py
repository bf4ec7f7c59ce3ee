"""Collective rules written in Python for the tests (plug-ins named as module:Class)."""

from __future__ import annotations

from mercat.incentives.rules import CustomRule


class HalvingRule(CustomRule):
    """A failure halves the stake (at least P is lost); a success adds R up to S0."""

    name = "halving"
    description = "failure halves the stake, success adds R up to S0"
    stake_weighted = True

    def updated_stake(self, stake: float, success: bool) -> float:
        if success:
            return min(stake + self.terms.reward, self.terms.initial_stake)
        return max(stake - max(stake / 2, self.terms.penalty), 0.0)


class SquareWeights(HalvingRule):
    """The halving rule, drawing assets in proportion to the square of their stake."""

    name = "halving-squared"
    description = "the halving rule with selection by stake squared"

    def weight(self, stake: float) -> float:
        return stake * stake


class NeverRemoves(CustomRule):
    """Blind rewards and penalties without removal, floored at zero; uniform selection."""

    name = "never-removes"
    description = "R and P without removal, floored at 0"
    removal = False

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale

    def updated_stake(self, stake: float, success: bool) -> float:
        move = self.terms.reward if success else -self.terms.penalty
        return max(stake + self.scale * move, 0.0)


class ZeroWeights(HalvingRule):
    """A rule whose weights vanish: selection cannot go on (the engine must say so)."""

    name = "zero-weights"
    description = "every weight is 0"

    def weight(self, stake: float) -> float:
        return 0.0
