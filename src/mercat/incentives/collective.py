"""The collective settlement rule and the four mechanisms of seed 000.

After a task, only its outcome is known, not who caused it. The rule treats every asset of
the task alike: each loses the penalty P when the task failed and gains the reward R when it
succeeded; an asset whose stake falls to the removal level is removed from the market.

The four mechanisms of the seed differ in three switches:

| mechanism  | stake moves | selection weight | removal at the level | stakes clamped      |
|------------|-------------|------------------|----------------------|---------------------|
| free       | no (paper)  | uniform          | no                   | no                  |
| coll-stake | yes         | uniform          | yes                  | no                  |
| coll-rep   | yes         | stake            | no                   | [S0/1000, S0]       |
| coll-sr    | yes         | stake            | yes                  | [S0/1000, S0]       |

Readings (the defaults follow the authors' public simulator unless stated):

- Removal happens when S ≤ P (the simulator); the paper writes S < P. `removal_inclusive`
  selects either.
- Coll-Rep and Coll-SR clamp every stake to [S0/1000, S0] after each update (the simulator;
  the paper does not say). The floor keeps a selection weight positive, the cap bounds
  how much reputation an asset can bank. Free and Coll-Stake are not clamped.
- Free: the paper calls it the baseline "without rewards nor penalties", so its stakes do
  not move (the default here). The simulator moves them anyway (unclamped, so they go
  negative) without ever acting on them; `free_moves_stakes=True` reproduces that
  bookkeeping. No observable of the experiments (failures, selection, removal) depends
  on it, since Free neither weights by stake nor removes.

`settle` is the plain, readable statement of the rule. The simulation engines, the ledger
and the smart contracts all implement it, and differential tests hold them to it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.incentives.calibration import reward_for_target

AssetId = Hashable

#: The simulator's clamp floor, as a fraction of S0.
DEFAULT_FLOOR_RATIO = 1 / 1000


@dataclass(frozen=True)
class CollectiveRule:
    """How one task's outcome moves the stakes of the assets that ran it.

    `stake_floor`/`stake_cap` clamp a stake after each update (None: no clamp on that side).
    `removal` removes an asset whose stake reaches `penalty` (S ≤ P when
    `removal_inclusive`, else S < P). `moves_stakes=False` makes the rule inert (Free).
    """

    penalty: float
    reward: float
    removal: bool
    removal_inclusive: bool = True
    stake_floor: float | None = None
    stake_cap: float | None = None
    moves_stakes: bool = True

    def __post_init__(self) -> None:
        check.positive("penalty", self.penalty)
        check.non_negative("reward", self.reward)
        if self.stake_floor is not None:
            check.non_negative("stake_floor", self.stake_floor)
        if self.stake_cap is not None:
            check.positive("stake_cap", self.stake_cap)
        if (
            self.stake_floor is not None
            and self.stake_cap is not None
            and self.stake_floor > self.stake_cap
        ):
            raise InvalidParameterError(
                f"stake_floor {self.stake_floor} exceeds stake_cap {self.stake_cap}"
            )

    def updated_stake(self, stake: float, success: bool) -> float:
        """One asset's stake after one task: reward or penalty, then the clamp."""
        if not self.moves_stakes:
            return stake
        stake = stake + self.reward if success else stake - self.penalty
        if self.stake_cap is not None and stake > self.stake_cap:
            stake = self.stake_cap
        if self.stake_floor is not None and stake < self.stake_floor:
            stake = self.stake_floor
        return stake

    def is_ruined(self, stake: float) -> bool:
        """Whether a stake is at the removal level (only meaningful when `removal`)."""
        if self.removal_inclusive:
            return stake <= self.penalty
        return stake < self.penalty


@dataclass(frozen=True)
class Settlement:
    """The result of settling one task: every stake afterwards, and who was removed.

    `stakes` holds all assets passed in (removed ones with their final stake);
    `removed` lists removed assets in the order of the task's assets.
    """

    stakes: dict[AssetId, float]
    removed: tuple[AssetId, ...]


def settle(
    stakes: Mapping[AssetId, float],
    task_assets: Sequence[AssetId],
    success: bool,
    rule: CollectiveRule,
) -> Settlement:
    """Apply the collective rule to one task. Pure: the input mapping is not modified.

    Every asset of the task gains `rule.reward` if the task succeeded and loses
    `rule.penalty` if it failed, blindly; then its stake is clamped; then, if the rule
    removes, an asset at the removal level is removed. Assets not in the task are
    untouched.
    """
    if not task_assets:
        raise InvalidParameterError("a task needs at least one asset")
    if len(set(task_assets)) != len(task_assets):
        raise InvalidParameterError(f"task assets repeat: {list(task_assets)!r}")
    unknown = [a for a in task_assets if a not in stakes]
    if unknown:
        raise InvalidParameterError(f"task assets without a stake: {unknown!r}")
    for asset in task_assets:
        value = stakes[asset]
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidParameterError(
                f"stake of {asset!r} must be a finite number, got {value!r}"
            )

    new_stakes = dict(stakes)
    removed = []
    for asset in task_assets:
        new_stakes[asset] = rule.updated_stake(new_stakes[asset], success)
        if rule.removal and rule.is_ruined(new_stakes[asset]):
            removed.append(asset)
    return Settlement(new_stakes, tuple(removed))


# --- the four mechanisms --------------------------------------------------------------------


@dataclass(frozen=True)
class Mechanism:
    """A named combination of selection, removal and clamping (one row of the table above)."""

    name: str
    description: str
    stake_weighted: bool  # pick assets with probability proportional to stake
    removal: bool
    clamped: bool  # clamp to [floor_ratio·S0, S0] after each update
    moves_stakes: bool = True

    compiled = True  # the fast engine's kernel runs these four (a plug-in rule: False)

    def weight(self, stake: float) -> float:
        """The selection weight of an asset at this stake: the stake itself."""
        return stake

    def integer_rule(self, rule: CollectiveRule, unit: int):  # type: ignore[no-untyped-def]
        """`rule` (from `self.rule(...)`) in integer base units (`IntegerRule`)."""
        from mercat.incentives.integer_rule import IntegerRule

        return IntegerRule.from_collective(rule, unit)

    def rule(
        self,
        initial_stake: float,
        task_target: float,
        penalty: float = 1.0,
        removal_inclusive: bool = True,
        floor_ratio: float = DEFAULT_FLOOR_RATIO,
        clamp: bool | None = None,
        free_moves_stakes: bool = False,
    ) -> CollectiveRule:
        """The settlement rule of this mechanism for a market calibrated to `task_target`.

        `clamp=None` keeps the mechanism's own clamping; True/False force it.
        """
        check.positive("initial_stake", initial_stake)
        check.open_unit("floor_ratio", floor_ratio)
        clamped = self.clamped if clamp is None else clamp
        return CollectiveRule(
            penalty=penalty,
            reward=reward_for_target(task_target, penalty),
            removal=self.removal,
            removal_inclusive=removal_inclusive,
            stake_floor=floor_ratio * initial_stake if clamped else None,
            stake_cap=initial_stake if clamped else None,
            moves_stakes=self.moves_stakes or free_moves_stakes,
        )


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        Mechanism(
            "free",
            "Baseline: no rewards nor penalties, uniform selection, no removal.",
            stake_weighted=False,
            removal=False,
            clamped=False,
            moves_stakes=False,
        ),
        Mechanism(
            "coll-stake",
            "Collective stake: blind rewards and penalties, removal at the level, uniform picks.",
            stake_weighted=False,
            removal=True,
            clamped=False,
        ),
        Mechanism(
            "coll-rep",
            "Collective reputation: stake weighs selection, clamped, never removed.",
            stake_weighted=True,
            removal=False,
            clamped=True,
        ),
        Mechanism(
            "coll-sr",
            "Collective stake + reputation: stake-weighted selection, clamped, removal.",
            stake_weighted=True,
            removal=True,
            clamped=True,
        ),
    )
}


def mechanism(name: str, **options: Any) -> Any:
    """Look a collective rule up by name: `free`, `coll-stake`, `coll-rep`, `coll-sr`, a
    plug-in's name or `module:Class` (`mercat.incentives.rules`), built with `options`.
    Returns a `Mechanism` for the four, a calibratable `CustomRule` for a plug-in."""
    from mercat.incentives.rules import collective_rule

    return collective_rule(name, **options)
