"""Calibration of collective incentives (seed 000, §II, eq. 1-7).

A task t runs on a set of assets A_t and only its overall outcome is observed. Every asset
of a failed task loses the penalty P; every asset of a successful task gains the reward R.
Choosing R from a target task failure rate F_t^target makes the expected stake change of an
asset zero exactly when the task failure rate it experiences equals the target, negative
above it (eventual ruin) and positive below it.

Readings of the extracted text (see ../shared/seeds/README.md):

- Eq. 1 prints the product over the power set with an exponent |P(A_t)|; that exponent is an
  extraction artefact. The task fails unless every asset and every combination of assets
  in the power set succeeds: F_t = 1 - prod_{A in P(A_t), A != {}} (1 - F_A).
- Eq. 2 prints F_a^target = (1 - F_t^target)^(1/|A_t|); the extracted text lost the leading
  "1 -". Without combination failures and with every asset at the same rate F_a,
  eq. 1 gives F_t = 1 - (1 - F_a)^|A_t|, hence F_a^target = 1 - (1 - F_t^target)^(1/|A_t|).
  The authors' simulator computes exactly this.

All functions accept `int`, `float` or `fractions.Fraction` and return the same kind of
number, so that the identities of the paper can be checked exactly with fractions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

from mercat import validation as check
from mercat.errors import InvalidParameterError

Number = float | Fraction


def task_failure_probability(
    asset_failure_rates: Iterable[Number],
    combination_failure_rates: Iterable[Number] = (),
) -> Number:
    """Eq. 1: probability that a task fails given the failure rates of what it runs on.

    `asset_failure_rates` holds F_a for each asset of the task (|A| = 1) and
    `combination_failure_rates` holds F_A for each combination A ⊆ A_t with |A| >= 2 that
    has a failure mode of its own (the seed's Fig. 2c; zero for all others). Failures are
    independent, so the task succeeds with the product of the success probabilities.
    """
    survive: Number = 1
    for i, rate in enumerate(asset_failure_rates):
        survive *= 1 - check.probability(f"asset_failure_rates[{i}]", rate)
    for i, rate in enumerate(combination_failure_rates):
        survive *= 1 - check.probability(f"combination_failure_rates[{i}]", rate)
    return 1 - survive


def task_failure_probability_of(
    task_assets: Iterable[str | int],
    asset_failure_rates: Mapping[str | int, Number],
    combination_failure_rates: Mapping[frozenset, Number] | None = None,
) -> Number:
    """Eq. 1 for named assets: picks from the maps the asset and combination rates that apply.

    A combination contributes only if all its members run the task (it is a subset of
    A_t); combinations of a single asset are rejected (they are asset rates).
    """
    members = list(task_assets)
    if len(set(members)) != len(members):
        raise InvalidParameterError(f"task_assets has duplicates: {members!r}")
    missing = [a for a in members if a not in asset_failure_rates]
    if missing:
        raise InvalidParameterError(f"no failure rate for assets {missing!r}")
    task_set = frozenset(members)
    combos = []
    for combo, rate in (combination_failure_rates or {}).items():
        if len(combo) < 2:
            raise InvalidParameterError(
                f"combination {set(combo)!r} has fewer than two assets; give it as an asset rate"
            )
        if combo <= task_set:
            combos.append(rate)
    return task_failure_probability([asset_failure_rates[a] for a in members], combos)


def asset_failure_target(task_target: Number, assets_per_task: int) -> Number:
    """Eq. 2 (corrected): the per-asset target F_a^target = 1 - (1 - F_t^target)^(1/|A_t|).

    The extracted seed text reads (1 - F_t^target)^(1/|A_t|), having lost the leading
    "1 -"; that expression is the per-asset *success* target. With fractions the root is
    computed in floating point (it is irrational in general) and returned as a float.
    """
    check.open_unit("task_target", task_target)
    n = check.integer("assets_per_task", assets_per_task, minimum=1)
    return 1 - (1 - float(task_target)) ** (1 / n) if n > 1 else task_target


def reward_for_target(task_target: Number, penalty: Number = 1) -> Number:
    """Eq. 6: the reward R = F_t^target · P / (1 - F_t^target) that makes the target break even."""
    check.open_unit("task_target", task_target)
    check.positive("penalty", penalty)
    return task_target * penalty / (1 - task_target)


def break_even_failure_rate(penalty: Number, reward: Number) -> Number:
    """Eq. 5: the task failure rate R / (P + R) at which the expected stake change is zero."""
    check.positive("penalty", penalty)
    check.positive("reward", reward)
    return reward / (penalty + reward)


def expected_loss_per_task(
    task_failure_rate: Number, penalty: Number = 1, reward: Number = 0
) -> Number:
    """Eq. 4: expected stake lost per task, L_a = F_t · P - (1 - F_t) · R (eq. 3 when R = 0).

    Positive values drain the stake (eventual ruin), negative values replenish it.
    """
    check.probability("task_failure_rate", task_failure_rate)
    check.positive("penalty", penalty)
    check.non_negative("reward", reward)
    return task_failure_rate * penalty - (1 - task_failure_rate) * reward


def calibrated_expected_loss(
    task_failure_rate: Number, task_target: Number, penalty: Number = 1
) -> Number:
    """Eq. 7: L_a(F_t) = (F_t - F_t^target) · P / (1 - F_t^target) with R from eq. 6.

    Written in this factored form, equal to eq. 4 with R = reward_for_target(...), the
    loss is exactly zero at the target for every number type.
    """
    check.probability("task_failure_rate", task_failure_rate)
    check.open_unit("task_target", task_target)
    check.positive("penalty", penalty)
    return (task_failure_rate - task_target) * penalty / (1 - task_target)


def calibrate(
    task_target: Number,
    assets_per_task: int = 4,
    penalty: Number = 1,
    task_failure_rate: Number | None = None,
) -> dict[str, Number | None]:
    """Everything `mercat calibrate` reports for one target, as a dict of named numbers."""
    reward = reward_for_target(task_target, penalty)
    result: dict[str, Number | None] = {
        "task_target": task_target,
        "assets_per_task": assets_per_task,
        "penalty": penalty,
        "reward": reward,
        "asset_target": asset_failure_target(task_target, assets_per_task),
        "break_even_task_failure_rate": break_even_failure_rate(penalty, reward),
        "expected_loss_at_rate": None,
        "task_failure_rate": task_failure_rate,
    }
    if task_failure_rate is not None:
        result["expected_loss_at_rate"] = calibrated_expected_loss(
            task_failure_rate, task_target, penalty
        )
    return result
