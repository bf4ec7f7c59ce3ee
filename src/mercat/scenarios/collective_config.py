"""Configuration of a collective-incentive marketplace simulation (seed 000, §III-C).

Every modeling choice the paper leaves open is a field here, defaulting to what the
authors' public simulator does (with which Table I is reproduced closely):

- `failure_rate_sampling`: "pool" (default), each Fa is one pick from a pool of 100,000
  draws of the power law; "direct", Fa = U^(1/α) per asset.
- `removal_inclusive`: True (default), removal when S ≤ P; False, S < P (the paper's text).
- `clamp`: None (default), Coll-Rep and Coll-SR clamp stakes to [S0/1000, S0] and the others
  do not; True/False force the clamp on or off.
- `replacement`: "one-per-interval" (default), one new asset every T tasks while fewer than
  N_a remain; "refill", every T tasks as many new assets as it takes to be back at N_a (the
  paper's "new assets ... replace removed assets, every T = 500 tasks").
- `free_moves_stakes`: False (default here, the paper: Free has no rewards nor penalties);
  True, the simulator's bookkeeping (no observable depends on it).

In every reading, when fewer than |A_t| assets remain before a task, assets are added up to
|A_t|.

`mechanism` names the collective rule: one of the four, or a plug-in rule
(`mercat.incentives.rules`: an installed name or `module:Class`), built with `rule_options`.
A plug-in rule runs on the reference and the pipeline engines; the fast engine refuses it.

Asset failure rates follow the power law with density α·x^(α-1) on [0, 1], i.e.
Fa = U^(1/α) with U uniform: the law the simulator draws from (`scipy.stats.powerlaw`),
long-tailed towards reliability as the paper asks ("most assets have low failure rates,
while a small number are failure-prone"), with mean α/(α+1) = 4.76% at α = 0.05, the
4.8% the paper reports.

Combination failures (eq. 1 with |A| ≥ 2) are part of the model though the seed's
experiments leave them out: with `combinations_per_asset` = c > 0, every asset entering
the market brings c combinations of itself with `combination_size` - 1 other live assets,
each with its own failure rate drawn from the same law; a task fails if any asset, or any
combination all of whose members run the task, fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.incentives.calibration import asset_failure_target, reward_for_target
from mercat.incentives.collective import DEFAULT_FLOOR_RATIO, mechanism

MAX_COUNT = 2**31 - 1
"""The largest count of a configuration (assets, tasks, interval, pool, combinations): the
engines number assets and tasks in 32-bit integers."""

FAILURE_RATE_SAMPLINGS = ("pool", "direct")
REPLACEMENTS = ("one-per-interval", "refill")


@dataclass(frozen=True)
class CollectiveConfig:
    """One market configuration; `runs` independent runs share it."""

    mechanism: str = "coll-sr"
    assets: int = 100  # N_a, initial (and, with the default replacement, maximum) assets
    tasks: int = 10_000  # N_t
    assets_per_task: int = 4  # |A_t|
    alpha: float = 0.05
    stake: float = 10.0  # S0
    penalty: float = 1.0  # P
    target: float = 0.01  # F_t^target
    replacement_interval: int = 500  # T
    # readings (defaults: the authors' simulator, see the module docstring)
    failure_rate_sampling: str = "pool"
    pool_size: int = 100_000
    removal_inclusive: bool = True
    clamp: bool | None = None
    floor_ratio: float = DEFAULT_FLOOR_RATIO
    replacement: str = "one-per-interval"
    free_moves_stakes: bool = False
    combinations_per_asset: int = 0
    combination_size: int = 2
    # a plug-in rule's own options, as sorted (key, value) pairs (a mapping is accepted)
    rule_options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.rule_options, Mapping):
            object.__setattr__(self, "rule_options", tuple(sorted(self.rule_options.items())))
        if not isinstance(self.mechanism, str):
            raise InvalidParameterError(
                f"mechanism must be a collective rule's name, got {self.mechanism!r}"
            )
        self.mechanism_spec  # noqa: B018 - resolves the rule: UnknownNameError, bad options
        check.integer("assets", self.assets, minimum=1)
        check.integer("tasks", self.tasks, minimum=1)
        check.integer("assets_per_task", self.assets_per_task, minimum=1)
        for name in ("assets", "tasks", "replacement_interval", "pool_size"):
            _at_most_max_count(name, getattr(self, name))
        _at_most_max_count("combinations_per_asset", self.combinations_per_asset)
        if self.assets < self.assets_per_task:
            raise InvalidParameterError(
                f"assets ({self.assets}) must be at least assets_per_task ({self.assets_per_task})"
            )
        check.positive("alpha", self.alpha)
        check.positive("stake", self.stake)
        check.positive("penalty", self.penalty)
        check.open_unit("target", self.target)
        check.integer("replacement_interval", self.replacement_interval, minimum=1)
        check.choice("failure_rate_sampling", self.failure_rate_sampling, FAILURE_RATE_SAMPLINGS)
        check.integer("pool_size", self.pool_size, minimum=1)
        check.open_unit("floor_ratio", self.floor_ratio)
        check.choice("replacement", self.replacement, REPLACEMENTS)
        check.integer("combinations_per_asset", self.combinations_per_asset, minimum=0)
        check.integer("combination_size", self.combination_size, minimum=2)
        if self.combination_size > self.assets_per_task:
            raise InvalidParameterError(
                f"combination_size ({self.combination_size}) cannot exceed assets_per_task "
                f"({self.assets_per_task}): such a combination never runs a task"
            )
        rule = self.rule
        floor = getattr(rule, "stake_floor", None)
        if (
            self.mechanism_spec.compiled
            and self.mechanism_spec.stake_weighted
            and not (rule.removal or floor is not None)
        ):
            raise InvalidParameterError(
                f"{self.mechanism} weighs selection by stake but neither removes assets nor "
                "clamps stakes: stakes could fall to zero or below and stop being weights; "
                "keep the clamp"
            )
        if rule.removal and rule.is_ruined(self.stake):
            raise InvalidParameterError(
                f"initial stake {self.stake} is already at the removal level (P = {self.penalty}); "
                "every asset would be removed on arrival"
            )

    @cached_property
    def mechanism_spec(self) -> Any:
        """The collective rule: a `Mechanism` (the four) or a plug-in `CustomRule`."""
        return mechanism(self.mechanism, **dict(self.rule_options))

    @property
    def rule(self) -> Any:
        """The rule calibrated to this market (`CollectiveRule` for the four)."""
        return self.mechanism_spec.rule(
            initial_stake=self.stake,
            task_target=self.target,
            penalty=self.penalty,
            removal_inclusive=self.removal_inclusive,
            floor_ratio=self.floor_ratio,
            clamp=self.clamp,
            free_moves_stakes=self.free_moves_stakes,
        )

    @property
    def reward(self) -> float:
        return reward_for_target(self.target, self.penalty)

    @property
    def asset_target(self) -> float:
        """F_a^target: TP/FP of removal are judged against it (Fa > F_a^target is failure-prone)."""
        return asset_failure_target(self.target, self.assets_per_task)

    def arrivals(self, task: int, live: int) -> int:
        """How many new assets enter after task `task` when `live` are in the market: every T
        tasks, one while fewer than N_a remain, or as many as it takes to be back at N_a."""
        if task % self.replacement_interval or live >= self.assets:
            return 0
        return 1 if self.replacement == "one-per-interval" else self.assets - live

    def with_(self, **changes: object) -> CollectiveConfig:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["rule_options"] = dict(self.rule_options)
        return out


def _at_most_max_count(name: str, value: object) -> None:
    """`name` no larger than MAX_COUNT (a larger count overflowed the engines' integers or
    numpy's array sizes, in a traceback)."""
    if isinstance(value, int) and value > MAX_COUNT:
        raise InvalidParameterError(f"{name} must be at most {MAX_COUNT}, got {value}")
