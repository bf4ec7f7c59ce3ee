"""Collective rules as plug-ins: seed 000's four, and any rule written in Python.

A collective rule decides, for the assets of one task and only from the task's outcome:

- **reward and penalty**: how each asset's stake moves on success and on failure (with any
  clamp), `updated_stake(stake, success)`;
- **removal**: whether an asset at its new stake leaves the market, `is_ruined(stake)`
  (consulted only when `removal` is true);
- **selection**: whether the next tasks draw assets uniformly or in proportion to
  `weight(stake)` (`stake_weighted`).

Seed 000's four (free, coll-stake, coll-rep, coll-sr; `incentives.collective.Mechanism`) are
switches over one parametrised rule, which the fast engine compiles (`compiled = True`). A
rule of any other shape subclasses `CustomRule` and writes `updated_stake` in plain Python,
over tokens; it then runs on the reference engine and on the round pipeline (the in-memory
book, through `BaseUnitRule`), and the fast engine refuses it by name. A rule reaches mercat
like any plug-in (mercat.plugins): an entry point in the group `mercat.collective_rules`,
`RULES.register(MyRule)`, or `mypkg.rules:MyRule` wherever a rule's name is asked for.

    class SlashFraction(CustomRule):
        \"\"\"Failure slashes a fraction of the stake instead of a fixed P.\"\"\"

        name = "slash-fraction"
        description = "reward R on success, lose a fraction of the stake on failure"
        stake_weighted = True

        def __init__(self, fraction: float = 0.2) -> None:
            self.fraction = fraction

        def updated_stake(self, stake: float, success: bool) -> float:
            if success:
                return min(stake + self.terms.reward, self.terms.initial_stake)
            return stake * (1 - self.fraction)

`mercat.testing.collective_rule.CollectiveRuleContract` is the contract such a rule passes.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from mercat import validation as check
from mercat.errors import InvalidParameterError, MercatError, PluginError
from mercat.incentives.calibration import reward_for_target
from mercat.incentives.collective import DEFAULT_FLOOR_RATIO, MECHANISMS, Mechanism
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry

_SNAP = 1e-9
"""A stake in base units within this (relative) of an integer is that integer: float noise."""


@dataclass(frozen=True)
class RuleTerms:
    """The market terms a rule is calibrated to, in tokens: S0, P, R = F·P/(1-F) for the task
    target F, and the readings `CollectiveConfig` carries (removal at S ≤ P or S < P, the
    clamp floor as a fraction of S0, the clamp forced on or off)."""

    initial_stake: float
    penalty: float
    reward: float
    task_target: float
    removal_inclusive: bool = True
    floor_ratio: float = DEFAULT_FLOOR_RATIO
    clamp: bool | None = None


class CustomRule(ABC):
    """A collective rule written in Python (module docstring). Subclasses set `name`,
    `description` and `stake_weighted`, write `updated_stake`, and may override `is_ruined`
    (default: S ≤ P, or S < P when removal is not inclusive), `weight` (default: the stake)
    and `removal` (default: true). Constructor arguments are the rule's own options."""

    name: ClassVar[str]
    description: ClassVar[str]
    stake_weighted: ClassVar[bool] = False
    removal: ClassVar[bool] = True
    moves_stakes: ClassVar[bool] = True
    compiled: ClassVar[bool] = False  # the fast engine's kernel cannot run Python rules

    _terms: RuleTerms | None = None

    @property
    def terms(self) -> RuleTerms:
        """The market terms this rule was calibrated to by `rule(...)`."""
        if self._terms is None:
            raise InvalidParameterError(
                f"collective rule {self.name!r} is not calibrated to a market yet: call "
                ".rule(initial_stake, task_target, penalty) first"
            )
        return self._terms

    def rule(
        self,
        initial_stake: float,
        task_target: float,
        penalty: float = 1.0,
        removal_inclusive: bool = True,
        floor_ratio: float = DEFAULT_FLOOR_RATIO,
        clamp: bool | None = None,
        free_moves_stakes: bool = False,
    ) -> CustomRule:
        """A copy of this rule calibrated to a market (the same signature as
        `Mechanism.rule`; `free_moves_stakes` concerns Free only and is ignored here)."""
        check.positive("initial_stake", initial_stake)
        check.positive("penalty", penalty)
        check.open_unit("floor_ratio", floor_ratio)
        bound = copy.copy(self)
        bound._terms = RuleTerms(
            initial_stake=float(initial_stake),
            penalty=float(penalty),
            reward=reward_for_target(task_target, penalty),
            task_target=float(task_target),
            removal_inclusive=bool(removal_inclusive),
            floor_ratio=float(floor_ratio),
            clamp=clamp,
        )
        return bound

    @abstractmethod
    def updated_stake(self, stake: float, success: bool) -> float:
        """One asset's stake after one task it ran (tokens)."""

    def is_ruined(self, stake: float) -> bool:
        """Whether an asset at this stake leaves the market (when `removal`)."""
        if self.terms.removal_inclusive:
            return stake <= self.terms.penalty
        return stake < self.terms.penalty

    def weight(self, stake: float) -> float:
        """An asset's selection weight at this stake (when `stake_weighted`)."""
        return stake

    def integer_rule(self, rule: CustomRule, unit: int) -> BaseUnitRule:
        """The calibrated `rule` over base units, for the books of the round pipeline."""
        return BaseUnitRule(rule, unit)

    def __repr__(self) -> str:
        options = ", ".join(
            f"{k}={v!r}" for k, v in sorted(vars(self).items()) if not k.startswith("_")
        )
        return f"{type(self).__name__}({options})"


@dataclass(frozen=True)
class BaseUnitRule:
    """A `CustomRule` over integer base units (`unit` per token), as the books' money rule
    calls it. The stake after a task is the rule's, in base units, rounded down (an asset
    never receives more than the rule says; what rounding keeps stays in the reward pool)
    after snapping float noise (within 1e-9, relative, of an integer), and never below 0."""

    rule: CustomRule
    unit: int

    def __post_init__(self) -> None:
        if not isinstance(self.unit, int) or isinstance(self.unit, bool) or self.unit < 1:
            raise InvalidParameterError(f"unit must be a positive integer, got {self.unit!r}")

    @property
    def removal(self) -> bool:
        return self.rule.removal

    # The books bound an active asset's stake by a rule's clamp (runtime.limits); a rule in
    # Python declares none: it clamps, if it does, inside `updated_stake`.
    @property
    def stake_floor(self) -> int | None:
        return None

    @property
    def stake_cap(self) -> int | None:
        return None

    @property
    def moves_stakes(self) -> bool:
        return self.rule.moves_stakes

    def updated_stake(self, stake: int, success: bool) -> int:
        if not self.moves_stakes:
            return stake
        after = self.rule.updated_stake(stake / self.unit, success)
        if not isinstance(after, int | float) or not math.isfinite(after):
            raise InvalidParameterError(
                f"collective rule {self.rule.name!r} returned stake {after!r}; a stake must be "
                "a finite number"
            )
        exact = after * self.unit
        nearest = round(exact)
        if abs(exact - nearest) <= _SNAP * max(1.0, abs(exact)):
            return max(int(nearest), 0)
        return max(math.floor(exact), 0)

    def is_ruined(self, stake: int) -> bool:
        # a rule without removal ruins no one, whatever its `is_ruined` would say
        return self.removal and self.rule.is_ruined(stake / self.unit)

    @property
    def minimum_stake(self) -> int:
        """The least stake (base units) that is not at the removal level: a binary search up
        to S0, the removal level being a threshold (a stake above a ruined one may be fine,
        never the other way round)."""
        if not self.removal:
            return 0
        high = round(self.rule.terms.initial_stake * self.unit)
        if self.is_ruined(high):
            raise InvalidParameterError(
                f"collective rule {self.rule.name!r} removes an asset at its initial stake"
            )
        low = -1  # ruined (or below any stake)
        while high - low > 1:
            middle = (low + high) // 2
            if middle >= 0 and self.is_ruined(middle):
                low = middle
            else:
                high = middle
        return high


RULES: ClassRegistry[Any] = ClassRegistry(
    "collective rule",
    tuple(MECHANISMS.values()),
    group=GROUPS["collective rule"],
    base=(CustomRule, Mechanism),
    instances=True,
)
"""Every collective rule by name: seed 000's four (configured `Mechanism` objects), then the
registered and the installed `CustomRule` classes."""


def collective_rule(name: str, **options: Any) -> Mechanism | CustomRule:
    """The collective rule called `name` (a built-in name in any case, a plug-in's name, or
    `module:Class`), built with its options."""
    key = name.lower() if name.lower() in MECHANISMS else name
    member = RULES.resolve(key)
    if isinstance(member, type) and not issubclass(member, CustomRule):
        raise PluginError(f"collective rule {name!r} is not a CustomRule subclass")
    try:
        return RULES.instantiate(member, dict(options))
    except MercatError:
        raise
    except (TypeError, ValueError) as exc:  # options the rule's constructor refuses
        raise InvalidParameterError(f"collective rule {name!r}: bad options ({exc})") from exc
