"""The collective rule of seed 000 in integer base units.

`mercat.incentives.collective.CollectiveRule` states the rule over real numbers: each asset
of a task gains R on success and loses P on failure, then its stake is clamped, then an
asset at the removal level leaves the market. A ledger cannot mint: every token a rule
pays must come from somewhere. Here the rule moves tokens between the asset's stake and the
ledger's *reward pool*:

- a reward is paid from the pool into the stake, a penalty goes from the stake into the
  pool, and a clamp returns the excess to the pool (cap) or keeps the asset at the floor by
  taking less (floor). The total supply never changes; a settlement whose rewards the pool
  cannot pay is refused as a whole (`RewardPoolExhaustedError`).
- a stake never goes below zero (tokens cannot be negative): the penalty taken is at most
  the stake. With removal on, or with a floor, the float rule never asks for more, so this
  guard only matters for configurations the float rule lets go negative.

Rounding, when the float rule is converted to base units (`IntegerRule.from_collective`):
each quantity is multiplied by `unit` (base units per token) and, if that lies within
1e-9 (relative) of an integer, taken as that integer (it was meant to be exact and float
arithmetic blurred it, as 0.01·99/0.99); otherwise
- the penalty must be exact (it is the parameter the market chooses; refused otherwise),
- the reward is rounded *down* (R = F·P/(1-F) is rarely a whole number of base units; an
  asset never receives more than the rule promises, the remainder stays in the pool),
- the clamp floor is rounded *up* and the cap *down* (the clamp interval only shrinks).
The drift against the float rule is then below one base unit per reward received.
`IntegerRule.calibrated` computes R exactly from a decimal target with fractions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from mercat.errors import InvalidParameterError
from mercat.incentives.collective import CollectiveRule

#: A base-unit amount. Every amount in the ledger is one of these, never a float.
Tokens = int

_SNAP = Fraction(1, 10**9)


def _scaled(name: str, value: float | int | Fraction, unit: int) -> tuple[Fraction, int | None]:
    """value·unit exactly, and the integer it snaps to (None if it is not one)."""
    exact = Fraction(value) * unit
    nearest = round(exact)
    if abs(exact - nearest) <= _SNAP * max(1, abs(exact)):
        return exact, int(nearest)
    return exact, None


def _non_negative_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class IntegerRule:
    """`CollectiveRule` over base units. Fields mean what they mean there."""

    penalty: Tokens
    reward: Tokens
    removal: bool
    removal_inclusive: bool = True
    stake_floor: Tokens | None = None
    stake_cap: Tokens | None = None
    moves_stakes: bool = True

    def __post_init__(self) -> None:
        if _non_negative_int("penalty", self.penalty) == 0:
            raise InvalidParameterError("penalty must be at least one base unit")
        _non_negative_int("reward", self.reward)
        if self.stake_floor is not None:
            _non_negative_int("stake_floor", self.stake_floor)
        if self.stake_cap is not None:
            _non_negative_int("stake_cap", self.stake_cap)
        if (
            self.stake_floor is not None
            and self.stake_cap is not None
            and self.stake_floor > self.stake_cap
        ):
            raise InvalidParameterError(
                f"stake_floor {self.stake_floor} exceeds stake_cap {self.stake_cap}"
            )

    def updated_stake(self, stake: Tokens, success: bool) -> Tokens:
        """One asset's stake after one task, as `CollectiveRule.updated_stake`, never < 0."""
        if not self.moves_stakes:
            return stake
        new = stake + self.reward if success else stake - self.penalty
        if self.stake_cap is not None and new > self.stake_cap:
            new = self.stake_cap
        if self.stake_floor is not None and new < self.stake_floor:
            new = self.stake_floor
        return max(new, 0)

    def is_ruined(self, stake: Tokens) -> bool:
        """Whether a stake is at the removal level (S ≤ P, or S < P when not inclusive)."""
        if self.removal_inclusive:
            return stake <= self.penalty
        return stake < self.penalty

    @property
    def minimum_stake(self) -> Tokens:
        """The least stake an asset may enter with: one that is not already ruined."""
        return self.penalty + 1 if self.removal_inclusive else self.penalty

    @classmethod
    def from_collective(cls, rule: CollectiveRule, unit: int) -> IntegerRule:
        """Convert a float rule to base units (`unit` base units per token), rounding as
        the module docstring says."""
        if not isinstance(unit, int) or unit < 1:
            raise InvalidParameterError(f"unit must be a positive integer, got {unit!r}")
        exact, penalty = _scaled("penalty", rule.penalty, unit)
        if penalty is None:
            raise InvalidParameterError(
                f"penalty {rule.penalty} is not a whole number of base units at unit {unit}"
            )
        exact, reward = _scaled("reward", rule.reward, unit)
        reward = reward if reward is not None else math.floor(exact)
        floor = cap = None
        if rule.stake_floor is not None:
            exact, floor = _scaled("stake_floor", rule.stake_floor, unit)
            floor = floor if floor is not None else math.ceil(exact)
        if rule.stake_cap is not None:
            exact, cap = _scaled("stake_cap", rule.stake_cap, unit)
            cap = cap if cap is not None else math.floor(exact)
        return cls(
            penalty=penalty,
            reward=reward,
            removal=rule.removal,
            removal_inclusive=rule.removal_inclusive,
            stake_floor=floor,
            stake_cap=cap,
            moves_stakes=rule.moves_stakes,
        )

    @staticmethod
    def calibrated_reward(task_target: str | Fraction | float, penalty: Tokens) -> Tokens:
        """R = F·P/(1-F) in base units, exactly, rounded down. A float target is read as
        the decimal it prints as (0.01 is 1/100), so the result does not depend on float
        noise."""
        target = (
            Fraction(str(task_target)) if isinstance(task_target, float) else Fraction(task_target)
        )
        if not 0 < target < 1:
            raise InvalidParameterError(f"task_target must lie in (0, 1), got {task_target!r}")
        _non_negative_int("penalty", penalty)
        return math.floor(target * penalty / (1 - target))
