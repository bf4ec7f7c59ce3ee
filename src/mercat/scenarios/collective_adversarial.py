"""Seed 000's collective-incentive market with an adversary and counter-measures: a readable
engine in plain Python.

It is the reference engine's market (`collective_reference.py`: honest assets with failure
rates from the power law, |A_t| assets a task, the collective rule settling every task with
`incentives.collective.settle`, removal, replacement every T tasks) with three additions:

1. **Owners.** Every honest asset is its own owner; one more owner, the adversary
   (`mercat.scenarios.collective_adversaries`), enters its identities next to the N_a honest
   assets. Before each task, each of the adversary's identities on it says whether it does
   the work; one that does not fails the task for certain. After the task, the adversary's
   `step` hook returns its moves (identities that leave, identities that enter, stake moved
   between its identities).
2. **Money.** Every asset that runs a task is paid `fee` (whatever the outcome: under a
   blind collective rule nobody can tell who failed), and doing the work costs it
   `work_cost`. An owner's profit is fees - work costs - entry bonds + the stake it gets back
   (at removal, at leaving, or at the end of the run) - the stake it posted.
3. **Counter-measures** (`mercat.scenarios.collective_countermeasures`): an entry bond per
   new identity, a stake ramp-up and reputation decay per owner, which scale the selection
   weight. The market's N_a founding honest assets count as established (no ramp-up); the
   adversary arrives in that market, so its identities, the first ones included, ramp up,
   as every later honest replacement does. Under uniform selection (Free, Coll-Stake) the
   weight is 1 times the factors; under Coll-Rep and Coll-SR it is the stake times them.
   Picks are rejection draws against the largest weight any asset ever had, as in the
   reference engine.

Readings that differ from the reference engine: failure rates are drawn directly
(Fa = U^(1/α)), whatever `failure_rate_sampling` says; combinations are not modelled (the
engine refuses `combinations_per_asset` > 0); honest replacements follow `config.arrivals`
counted over honest assets only, so the adversary's identities do not crowd them out.
Randomness is Python's `random.Random` seeded per run: an adversary and its honest twin
(`Adversary.honest_twin`) run with the same seed start from the same honest market.

What a run measures (`AdversarialRecord`): the adversary's profit and its parts, the tasks
its identities ran and failed on purpose, how many identities it used; honest assets' mean
profit, the stake they lost on failed tasks an adversary identity ran (`honest_loss`), the
reliable honest assets removed; removal precision (a removal is right when the asset is
failure-prone, Fa > F_a^target, or failed on purpose at least once) and the task failure
rate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.incentives.collective import settle
from mercat.scenarios.collective_adversaries import (
    Adversary,
    Identity,
    Moves,
    TaskOutcome,
    TaskView,
)
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_countermeasures import CounterMeasures, OwnerMemory

ADVERSARY = -1
"""The adversary's owner id (honest assets are owned by themselves: owner id = asset id)."""

_TOLERANCE = 1e-9

MAX_IDENTITIES = 100_000
"""The most identities an adversary may enter in one run (its own and re-entries): a
plug-in asking for more is an error, not a run that fills the memory."""


@dataclass(frozen=True)
class Economics:
    """What running a task pays and costs an asset, in tokens (P = 1 by default)."""

    fee: float = 0.5
    work_cost: float = 0.3

    def __post_init__(self) -> None:
        check.non_negative("fee", self.fee)
        check.non_negative("work_cost", self.work_cost)
        if not math.isfinite(self.fee) or not math.isfinite(self.work_cost):
            raise InvalidParameterError("fee and work_cost must be finite")


@dataclass
class _Asset:
    owner: int
    role: str
    failure_rate: float
    stake: float
    posted: float
    created_at: int
    weight: float  # the rule's own selection weight at the current stake
    removed_at: int = -1
    left_at: int = -1
    tasks_run: int = 0
    tasks_failed: int = 0
    successes: int = 0
    shirked: int = 0
    fees: float = 0.0
    work_cost: float = 0.0
    bond: float = 0.0
    established: bool = False  # a founding honest asset: no ramp-up


@dataclass(frozen=True)
class TaskTrace:
    """One task as the trace keeps it: its assets, their owners, who failed on purpose,
    whether it failed, and every asset's stake before and after."""

    task: int
    assets: tuple[int, ...]
    owners: tuple[int, ...]
    shirked: tuple[int, ...]
    failed: bool
    before: tuple[float, ...]
    after: tuple[float, ...]


@dataclass(frozen=True)
class AdversarialRecord:
    """What one run leaves behind (module docstring); per-asset arrays by asset id."""

    failed: np.ndarray  # bool[N_t]
    owner: np.ndarray  # int64[n_assets]: ADVERSARY or the asset's own id
    failure_rate: np.ndarray
    created_at: np.ndarray
    removed_at: np.ndarray  # -1: never removed
    left_at: np.ndarray  # -1: never withdrawn by its owner
    tasks_run: np.ndarray
    shirked: np.ndarray  # tasks each asset failed on purpose
    profit: np.ndarray  # float64: each asset's profit (fees - costs - bond + stake back - posted)
    honest_loss: float
    true_positives: int
    false_positives: int
    honest_false_removals: int
    trace: tuple[TaskTrace, ...] | None = None
    economics: Economics = field(default_factory=Economics)

    @property
    def adversarial(self) -> np.ndarray:
        return self.owner == ADVERSARY

    @property
    def adversary_profit(self) -> float:
        return float(self.profit[self.adversarial].sum())

    @property
    def honest_profit_mean(self) -> float:
        honest = self.profit[~self.adversarial]
        return float(honest.mean()) if honest.size else 0.0

    @property
    def adversary_tasks(self) -> int:
        return int(self.tasks_run[self.adversarial].sum())

    @property
    def deliberate_failures(self) -> int:
        return int(self.shirked[self.adversarial].sum())

    @property
    def identities(self) -> int:
        return int(self.adversarial.sum())

    @property
    def task_failure_rate(self) -> float:
        return float(self.failed.mean())

    @property
    def removal_precision(self) -> float:
        removed = self.true_positives + self.false_positives
        return self.true_positives / removed if removed else 1.0


def simulate_run(
    config: CollectiveConfig,
    owner: Adversary,
    measures: CounterMeasures = CounterMeasures(),
    economics: Economics = Economics(),
    seed: int = 0,
    trace: bool = False,
) -> AdversarialRecord:
    """One run of `config` with the adversary `owner` among the honest assets."""
    if config.combinations_per_asset:
        raise InvalidParameterError(
            "the adversarial engine does not model combinations; set combinations_per_asset = 0"
        )
    rng = random.Random(seed)
    rule = config.rule
    spec = config.mechanism_spec
    weighted = spec.stake_weighted
    weight_of: Callable[[float], float] | None = None if spec.compiled else rule.weight
    per_task = config.assets_per_task
    s0 = config.stake
    memory = OwnerMemory(measures.reputation_half_life)

    assets: list[_Asset] = []
    live: list[int] = []
    live_honest = 0
    bound = 1.0  # no selection weight has ever exceeded this
    true_positives = false_positives = honest_false_removals = 0
    honest_loss = 0.0
    failed = np.zeros(config.tasks, dtype=bool)
    traces: list[TaskTrace] = []

    def base_weight(stake: float) -> float:
        if not weighted:
            return 1.0
        return stake if weight_of is None else float(weight_of(stake))

    adversary_identities = 0

    def enter(owner_id: int, identity: Identity, now: int, failure_rate: float) -> int:
        nonlocal bound, live_honest, adversary_identities
        if owner_id == ADVERSARY:
            if not isinstance(identity, Identity):
                raise InvalidParameterError(
                    f"adversary {owner.name!r} entered {identity!r}, not an Identity"
                )
            adversary_identities += 1
            if adversary_identities > MAX_IDENTITIES:
                raise InvalidParameterError(
                    f"adversary {owner.name!r} entered more than {MAX_IDENTITIES} identities"
                )
        stake = identity.stake_share * s0
        if rule.removal and rule.is_ruined(stake):
            raise InvalidParameterError(
                f"an identity entering with stake {stake:g} is already at the removal level "
                f"(P = {config.penalty:g})"
            )
        new = len(assets)
        asset = _Asset(
            new if owner_id != ADVERSARY else ADVERSARY,
            identity.role,
            failure_rate,
            stake,
            stake,
            now,
            base_weight(stake),
            bond=measures.entry_bond,
        )
        assets.append(asset)
        live.append(new)
        bound = max(bound, asset.weight)
        if owner_id != ADVERSARY:
            live_honest += 1
        return new

    def add_honest(now: int) -> None:
        new = enter(0, Identity(), now, rng.random() ** (1.0 / config.alpha))
        assets[new].established = now == 0

    def weight(a: int, task: int) -> float:
        asset = assets[a]
        w = asset.weight
        if measures.ramp_up_tasks and not asset.established:
            w *= measures.ramp_factor(asset.successes)
        if measures.reputation_half_life:
            w *= measures.reputation_factor(memory.remembered(asset.owner, task))
        return w

    def pick(task: int) -> list[int]:
        chosen: list[int] = []
        rejected = 0
        plain = not weighted and not measures.ramp_up_tasks and not measures.reputation_half_life
        while len(chosen) < per_task:
            candidate = live[rng.randrange(len(live))]
            if candidate in chosen:
                continue
            if not plain and not rng.random() * bound < weight(candidate, task):
                rejected += 1
                if rejected % (1000 * len(live)) == 0 and (
                    sum(1 for a in live if weight(a, task) > 0) < per_task
                ):
                    raise InvalidParameterError(
                        f"fewer than {per_task} live assets have a selection weight above 0"
                    )
                continue
            chosen.append(candidate)
        return chosen

    def finish(a: int) -> None:
        nonlocal live_honest
        live.remove(a)
        if assets[a].owner != ADVERSARY:
            live_honest -= 1

    def apply(moves: Moves, task: int) -> None:
        if not isinstance(moves, Moves):
            raise InvalidParameterError(
                f"adversary {owner.name!r}: step must return Moves, got {type(moves).__name__}"
            )
        mine = {a for a in live if assets[a].owner == ADVERSARY}
        for a in moves.leave:
            if a not in mine:
                raise InvalidParameterError(
                    f"adversary {owner.name!r} withdrew asset {a!r}, not one of its live assets"
                )
            finish(a)
            mine.discard(a)
            assets[a].left_at = task
        if moves.restake:
            unknown = set(moves.restake) - mine
            before = sum(assets[a].stake for a in moves.restake if a in mine)
            after = sum(moves.restake.values())
            if unknown or not math.isclose(before, after, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE):
                raise InvalidParameterError(
                    f"adversary {owner.name!r} moved stake it does not hold (assets "
                    f"{sorted(unknown)}, total {before:g} -> {after:g})"
                )
            for a, stake in moves.restake.items():
                if not stake > 0 or (rule.removal and rule.is_ruined(stake)):
                    raise InvalidParameterError(
                        f"adversary {owner.name!r} moved asset {a}'s stake to {stake!r}, at or "
                        "below the removal level"
                    )
                assets[a].stake = float(stake)
                assets[a].weight = base_weight(assets[a].stake)
        for identity in moves.enter:
            enter(ADVERSARY, identity, task, getattr(identity, "failure_rate", 0.0))

    for _ in range(config.assets):
        add_honest(0)
    for identity in owner.identities():
        enter(ADVERSARY, identity, 0, getattr(identity, "failure_rate", 0.0))

    for task in range(1, config.tasks + 1):
        while len(live) < per_task:
            add_honest(task)
        chosen = pick(task)
        shirked = []
        survival = 1.0
        for a in chosen:
            asset = assets[a]
            if asset.owner == ADVERSARY:
                allies = tuple(b for b in chosen if b != a and assets[b].owner == ADVERSARY)
                view = TaskView(
                    task,
                    a,
                    asset.role,
                    asset.stake,
                    s0,
                    config.penalty,
                    asset.stake - rule.updated_stake(asset.stake, False),
                    allies,
                    len(chosen) - 1 - len(allies),
                    tuple(
                        (assets[b].tasks_run, assets[b].tasks_failed)
                        for b in chosen
                        if assets[b].owner != ADVERSARY
                    ),
                )
                works = owner.works(view)
                if not isinstance(works, bool):
                    raise InvalidParameterError(
                        f"adversary {owner.name!r}: works must return true or false, got {works!r}"
                    )
                if not works:
                    shirked.append(a)
                    continue
            survival *= 1.0 - asset.failure_rate
        task_failed = rng.random() >= survival or bool(shirked)

        before = tuple(assets[a].stake for a in chosen)
        outcome = settle({a: assets[a].stake for a in chosen}, chosen, not task_failed, rule)
        adversary_ran = False
        for a in chosen:
            asset = assets[a]
            asset.stake = outcome.stakes[a]
            asset.weight = base_weight(asset.stake)
            bound = max(bound, asset.weight)
            asset.tasks_run += 1
            asset.fees += economics.fee
            if a in shirked:
                asset.shirked += 1
            else:
                asset.work_cost += economics.work_cost
            if not task_failed:
                asset.successes += 1
            else:
                asset.tasks_failed += 1
                memory.penalize(asset.owner, task)
            adversary_ran |= asset.owner == ADVERSARY
        if task_failed and adversary_ran:
            honest_loss += sum(
                max(0.0, b - assets[a].stake)
                for a, b in zip(chosen, before, strict=True)
                if assets[a].owner != ADVERSARY
            )
        for a in outcome.removed:
            finish(a)
            asset = assets[a]
            asset.removed_at = task
            if asset.failure_rate > config.asset_target or asset.shirked:
                true_positives += 1
            else:
                false_positives += 1
                honest_false_removals += asset.owner != ADVERSARY
        if trace:
            traces.append(
                TaskTrace(
                    task,
                    tuple(chosen),
                    tuple(assets[a].owner for a in chosen),
                    tuple(shirked),
                    task_failed,
                    before,
                    tuple(assets[a].stake for a in chosen),
                )
            )
        if adversary_ran:
            ran = tuple(a for a in chosen if assets[a].owner == ADVERSARY)
            removed = tuple(a for a in outcome.removed if assets[a].owner == ADVERSARY)
            stakes = {a: assets[a].stake for a in (*live, *removed) if assets[a].owner == ADVERSARY}
            apply(
                owner.step(
                    TaskOutcome(
                        task,
                        ran,
                        task_failed,
                        tuple(shirked),
                        stakes,
                        removed,
                        s0,
                        config.penalty,
                    )
                ),
                task,
            )
        for _ in range(config.arrivals(task, live_honest)):
            add_honest(task)
        failed[task - 1] = task_failed

    profit = np.array(
        [a.fees - a.work_cost - a.bond + a.stake - a.posted for a in assets], dtype=np.float64
    )
    return AdversarialRecord(
        failed=failed,
        owner=np.array([a.owner for a in assets], dtype=np.int64),
        failure_rate=np.array([a.failure_rate for a in assets], dtype=np.float64),
        created_at=np.array([a.created_at for a in assets], dtype=np.int64),
        removed_at=np.array([a.removed_at for a in assets], dtype=np.int64),
        left_at=np.array([a.left_at for a in assets], dtype=np.int64),
        tasks_run=np.array([a.tasks_run for a in assets], dtype=np.int64),
        shirked=np.array([a.shirked for a in assets], dtype=np.int64),
        profit=profit,
        honest_loss=honest_loss,
        true_positives=true_positives,
        false_positives=false_positives,
        honest_false_removals=honest_false_removals,
        trace=tuple(traces) if trace else None,
        economics=economics,
    )


def run_seeds(seed: int, runs: int) -> list[int]:
    """One seed per run, spawned from `seed` (an adversary and its twin share them)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(runs)]


def simulate(
    config: CollectiveConfig,
    make_owner: Callable[[], Adversary],
    measures: CounterMeasures = CounterMeasures(),
    economics: Economics = Economics(),
    runs: int = 1,
    seed: int = 0,
) -> list[AdversarialRecord]:
    """`runs` runs, each with a fresh adversary from `make_owner`."""
    check.integer("runs", runs, minimum=1)
    return [
        simulate_run(config, make_owner(), measures, economics, s) for s in run_seeds(seed, runs)
    ]
