"""The readable reference engine of the collective-incentive marketplace (seed 000, §III).

One task at a time, in plain Python, using the settlement rule `incentives.collective.settle`
itself. The compiled engine (`collective_fast.py`) must produce the same `RunRecord` for the
same configuration and random state; `tests/scenarios/test_collective_engines.py` holds them equal.

One task t = 1..N_t:
1. If fewer than |A_t| assets are live, add assets until there are |A_t|.
2. Pick |A_t| distinct live assets. Uniform mechanisms draw a live asset uniformly and
   redraw duplicates. Stake-weighted mechanisms draw a live asset uniformly and keep it
   with probability stake / bound (bound: the largest stake any asset ever held, S0 when
   stakes are capped), redrawing duplicates: each accepted pick is a stake-weighted draw
   among the live assets, exactly as the authors' `random.choices(weights=stakes)` with
   duplicates redrawn.
3. The task fails with probability 1 - ∏(1 - Fa) · ∏(1 - F_A) (eq. 1) over its assets and
   the combinations it contains: one uniform u, failed iff u ≥ the product.
4. Settle: every picked asset gets the reward or the penalty (then the clamp); assets at the
   removal level leave the market, counted as true positives if Fa > F_a^target.
5. Every T tasks, add new assets (one while fewer than N_a are live, or refill to N_a).

Random draws, in order: per new asset, the failure rate (pool index or uniform), then for
each combination its members (uniform indices, duplicates and itself redrawn) and its
rate; per task, the picks (one index each, plus one uniform per stake-weighted trial), then
one uniform for the outcome.

A plug-in collective rule (`mercat.incentives.rules.CustomRule`) runs here unchanged: its
`updated_stake` and `is_ruined` settle each task, and a stake-weighted one draws assets in
proportion to its `weight(stake)` (the bound is then the largest weight any asset ever had).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mercat.errors import InvalidParameterError
from mercat.incentives.collective import settle
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord
from mercat.scenarios.rng import Xoshiro256


@dataclass
class _Asset:
    failure_rate: float
    stake: float
    created_at: int
    weight: float  # its selection weight at its current stake
    removed_at: int = -1
    tasks_run: int = 0
    tasks_failed: int = 0


def simulate_run(
    config: CollectiveConfig,
    state: np.ndarray,
    pool: np.ndarray | None,
    record_picks: bool = False,
) -> RunRecord:
    """Simulate one run from xoshiro `state`; `pool` holds the Fa draws (None: direct draws)."""
    rng = Xoshiro256(state)
    rule = config.rule
    spec = config.mechanism_spec
    weighted = spec.stake_weighted
    # seed 000's four weigh by the stake itself; a plug-in rule by its weight(stake)
    weight_of = None if spec.compiled else rule.weight
    per_task = config.assets_per_task
    asset_target = config.asset_target

    assets: list[_Asset] = []  # every asset ever created; its index is its id
    live: list[int] = []  # ids of the assets in the market, in order of arrival
    combinations: list[tuple[tuple[int, ...], float]] = []
    initial_weight = config.stake if weight_of is None else _checked_weight(weight_of, config.stake)
    weight_bound = initial_weight  # no weight has ever exceeded this
    true_positives = false_positives = 0
    failed = np.zeros(config.tasks, dtype=bool)
    live_assets = np.zeros(config.tasks, dtype=np.int32)
    picks = np.zeros((config.tasks, per_task), dtype=np.int32) if record_picks else None

    def draw_failure_rate() -> float:
        if pool is not None:
            return float(pool[rng.below(len(pool))])
        return rng.uniform() ** (1.0 / config.alpha)

    def add_asset(now: int) -> None:
        new_id = len(assets)
        assets.append(_Asset(draw_failure_rate(), config.stake, now, initial_weight))
        for _ in range(config.combinations_per_asset):
            if len(live) < config.combination_size - 1:
                break  # not enough partners in the market yet
            partners: list[int] = []
            while len(partners) < config.combination_size - 1:
                candidate = live[rng.below(len(live))]
                if candidate not in partners:
                    partners.append(candidate)
            combinations.append(((*partners, new_id), draw_failure_rate()))
        live.append(new_id)

    def pick_task_assets() -> list[int]:
        chosen: list[int] = []
        rejected = 0
        while len(chosen) < per_task:
            candidate = live[rng.below(len(live))]
            if candidate in chosen:
                continue
            if weighted and not rng.uniform() * weight_bound < assets[candidate].weight:
                rejected += 1
                if rejected % (1000 * len(live)) == 0:
                    _check_drawable(live, assets, per_task, spec.name)
                continue
            chosen.append(candidate)
        return chosen

    for _ in range(config.assets):
        add_asset(0)

    for task in range(1, config.tasks + 1):
        while len(live) < per_task:
            add_asset(task)
        chosen = pick_task_assets()

        survival = 1.0
        for asset_id in chosen:
            survival *= 1.0 - assets[asset_id].failure_rate
        for members, rate in combinations:
            if all(m in chosen for m in members):
                survival *= 1.0 - rate
        task_failed = rng.uniform() >= survival

        outcome = settle({a: assets[a].stake for a in chosen}, chosen, not task_failed, rule)
        for asset_id in chosen:
            asset = assets[asset_id]
            asset.stake = outcome.stakes[asset_id]
            asset.weight = (
                asset.stake if weight_of is None else _checked_weight(weight_of, asset.stake)
            )
            asset.tasks_run += 1
            asset.tasks_failed += task_failed
            weight_bound = max(weight_bound, asset.weight)
        for asset_id in outcome.removed:
            live.remove(asset_id)
            assets[asset_id].removed_at = task
            if assets[asset_id].failure_rate > asset_target:
                true_positives += 1
            else:
                false_positives += 1

        for _ in range(config.arrivals(task, len(live))):
            add_asset(task)

        failed[task - 1] = task_failed
        live_assets[task - 1] = len(live)
        if picks is not None:
            picks[task - 1] = chosen

    size = config.combination_size
    return RunRecord(
        failed=failed,
        live_assets=live_assets,
        failure_rate=np.array([a.failure_rate for a in assets], dtype=np.float64),
        created_at=np.array([a.created_at for a in assets], dtype=np.int32),
        removed_at=np.array([a.removed_at for a in assets], dtype=np.int32),
        stake=np.array([a.stake for a in assets], dtype=np.float64),
        tasks_run=np.array([a.tasks_run for a in assets], dtype=np.int32),
        tasks_failed=np.array([a.tasks_failed for a in assets], dtype=np.int32),
        true_positives=true_positives,
        false_positives=false_positives,
        combination_members=np.array([m for m, _ in combinations], dtype=np.int32).reshape(
            -1, size
        ),
        combination_rates=np.array([r for _, r in combinations], dtype=np.float64),
        picks=picks,
    )


def _checked_weight(weight_of, stake: float) -> float:  # type: ignore[no-untyped-def]
    """A plug-in rule's selection weight, which must be a finite number >= 0."""
    weight = weight_of(stake)
    if not isinstance(weight, int | float) or not 0 <= weight < float("inf"):
        raise InvalidParameterError(
            f"a collective rule's weight must be a finite number >= 0, got {weight!r} at "
            f"stake {stake!r}"
        )
    return float(weight)


def _check_drawable(live: list[int], assets: list[_Asset], per_task: int, rule: str) -> None:
    """After a long run of rejected draws: are there |A_t| live assets of weight > 0?"""
    drawable = sum(1 for a in live if assets[a].weight > 0)
    if drawable < per_task:
        raise InvalidParameterError(
            f"collective rule {rule!r} left {drawable} live assets of weight > 0; a task "
            f"needs {per_task}"
        )
