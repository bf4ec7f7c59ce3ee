"""A collective rule as a plug-in: failures slash a fraction of the stake."""

from __future__ import annotations

from mercat.incentives.rules import CustomRule


class SlashFraction(CustomRule):
    """Seed 000's blind collective rule with a proportional penalty: every asset of a failed
    task loses `fraction` of its stake (at least the penalty P), every asset of a successful
    one gains R, capped at S0; an asset at or below P leaves the market. Selection is by
    stake raised to `exponent` (1: Coll-SR's stake-weighted draw)."""

    name = "slash-fraction"
    description = "lose a fraction of the stake (at least P) on failure, gain R on success"
    stake_weighted = True

    def __init__(self, fraction: float = 0.2, exponent: float = 1.0) -> None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        if exponent < 0:
            raise ValueError(f"exponent must be >= 0, got {exponent!r}")
        self.fraction = fraction
        self.exponent = exponent

    def updated_stake(self, stake: float, success: bool) -> float:
        terms = self.terms
        if success:
            return min(stake + terms.reward, terms.initial_stake)
        return max(stake - max(self.fraction * stake, terms.penalty), 0.0)

    def weight(self, stake: float) -> float:
        return max(stake, 0.0) ** self.exponent
