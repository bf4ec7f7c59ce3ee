"""Seed 000's experiment through the round pipeline: the same market as the fast engine, run
on the code a live market runs.

Each task of seed 000 becomes a request posted on an in-memory book (`MemoryBook`) and served
by a round of the pipeline (`mercat.runtime.round.run_round`):

- assets are servers whose owner offers them at no cost, staked with S0;
- a task is a request for |A_t| replicas; the `collective` mechanism draws its assets
  (uniformly under Free and Coll-Stake, in proportion to stake under Coll-Rep and Coll-SR:
  the seed's selection, `mercat.clearing.collective`);
- sampled execution fails a task with probability 1 - Π(1 - F_a) over its assets and the
  combinations it contains (eq. 1); attestation is direct;
- the book settles it with the collective rule in base units (`IntegerRule`, 10^6 base units
  per token: the reward R = F·P/(1-F) is rounded down to a base unit, a drift below 10^-6
  token per reward), removes ruined assets, and the scenario adds assets as the fast engine
  does (top-ups to |A_t|, one per T tasks or refills).

`tasks_per_round` = 1 (the default) settles each task before the next is drawn, as the seed
does; more tasks per round draw several tasks on the same stakes (faster; the stakes lag by
at most a round). Randomness comes from numpy generators spawned from the seed (not the fast
engine's xoshiro streams): the two engines agree in distribution, not draw for draw, and a
differential test holds their statistics within sampling error.

It returns the fast engine's `RunRecord`, so `mercat simulate collective --engine pipeline`
prints the same JSON.

A plug-in collective rule (`mercat.incentives.rules.CustomRule`) runs here as it is: the book
settles with it in base units (`BaseUnitRule`), and a stake-weighted one draws servers in
proportion to its `weight(stake)` (`ReweightedSelection`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mercat.clearing.base import Seed
from mercat.clearing.collective import CollectiveSelection
from mercat.market.model import Clearing, Market
from mercat.runtime.collector import fewer_collections
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.terms import Offer, RequestTerms
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_run import RunRecord

UNIT = 10**6
"""Base units per token in the pipeline's book."""

_OWNER, _REQUESTER = "providers", "requesters"
_PLENTY = 2**59  # what the owners, the requesters, the operator and the pool start with: four
# deposits of it keep the supply below the 2^62 every book stays under (runtime/limits.py)


@dataclass
class _Assets:
    """What the scenario knows of each asset it created (its id is its index)."""

    failure_rate: list[float] = field(default_factory=list)
    created_at: list[int] = field(default_factory=list)
    removed_at: list[int] = field(default_factory=list)
    final_stake: list[int | None] = field(default_factory=list)
    tasks_run: list[int] = field(default_factory=list)
    tasks_failed: list[int] = field(default_factory=list)


def integer_rule(config: CollectiveConfig) -> Any:
    """The configuration's collective rule in base units (`IntegerRule` for seed 000's four)."""
    return config.mechanism_spec.integer_rule(config.rule, UNIT)


class ReweightedSelection(CollectiveSelection):
    """Seed 000's selection by a plug-in rule's weight: each node's weight (its stake, as the
    snapshot sets it) becomes `weight(stake)` before the draw."""

    def __init__(self, weight: Callable[[float], float]) -> None:
        super().__init__(weighted=True)
        self.weight = weight

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        nodes = tuple(replace(n, weight=float(self.weight(n.weight))) for n in market.nodes)
        return super().clear(replace(market, nodes=nodes), seed=seed)


def selection(config: CollectiveConfig) -> CollectiveSelection:
    """How the configuration's rule draws assets: uniformly, by stake, or by a plug-in's
    weight of the stake."""
    spec = config.mechanism_spec
    if spec.stake_weighted and not spec.compiled:
        return ReweightedSelection(config.rule.weight)
    return CollectiveSelection(weighted=spec.stake_weighted)


def simulate_run(
    config: CollectiveConfig,
    rng: np.random.Generator,
    pool: np.ndarray | None,
    tasks_per_round: int = 1,
) -> RunRecord:
    """One run of `config` through the pipeline (module docstring)."""
    rule = integer_rule(config)
    book = MemoryBook(rule, unit=UNIT, keep_history=False)
    for account in (_OWNER, _REQUESTER):
        book.open_account(account)
        book.deposit(account, _PLENTY)
    book.deposit("operator", _PLENTY)
    book.fund_pool("operator", _PLENTY)
    stake = round(config.stake * UNIT)
    executor = SampledExecution()
    plan = RoundPlan(selection(config), executor)
    assets = _Assets()
    live: list[int] = []
    combinations: list[tuple[tuple[int, ...], float]] = []

    def draw_failure_rate() -> float:
        if pool is not None:
            return float(pool[rng.integers(len(pool))])
        return float(rng.random() ** (1.0 / config.alpha))

    def add_asset(now: int) -> None:
        new = len(assets.failure_rate)
        rate = draw_failure_rate()
        assets.failure_rate.append(rate)
        assets.created_at.append(now)
        assets.removed_at.append(-1)
        assets.final_stake.append(None)
        assets.tasks_run.append(0)
        assets.tasks_failed.append(0)
        for _ in range(config.combinations_per_asset):
            if len(live) < config.combination_size - 1:
                break
            partners: list[int] = []
            while len(partners) < config.combination_size - 1:
                candidate = live[int(rng.integers(len(live)))]
                if candidate not in partners:
                    partners.append(candidate)
            members = (*partners, new)
            combo_rate = draw_failure_rate()
            combinations.append((members, combo_rate))
            executor.add_combination((f"a{m}" for m in members), combo_rate)
        name = f"a{new}"
        book.add_asset(_OWNER, name, stake, Offer(name))
        executor.set_failure_rate(name, rate)
        live.append(new)

    for _ in range(config.assets):
        add_asset(0)
    failed = np.zeros(config.tasks, dtype=bool)
    live_assets = np.zeros(config.tasks, dtype=np.int32)
    true_positives = false_positives = 0
    target = config.asset_target
    task = 0
    round_ = 0
    while task < config.tasks:
        round_ += 1
        while len(live) < config.assets_per_task:
            add_asset(task + 1)
        batch = min(tasks_per_round, config.tasks - task)
        for k in range(batch):
            book.post_request(
                _REQUESTER,
                RequestTerms(f"q{task + k + 1}", max_price=1, replicas=config.assets_per_task),
            )
        report = run_round(book, round_, plan, rng)
        outcome = {s.request: s for s in report.settlements}
        for _ in range(batch):
            task += 1
            settled = outcome.get(f"q{task}")
            if settled is None:  # not enough assets drawn this round: the seed never skips
                raise AssertionError(f"task {task} was not served")
            task_failed = not settled.paid
            for effect in settled.effects:
                index = int(effect.asset[1:])
                assets.tasks_run[index] += 1
                assets.tasks_failed[index] += task_failed
                if effect.removed:
                    live.remove(index)
                    assets.removed_at[index] = task
                    assets.final_stake[index] = effect.stake_after
                    if assets.failure_rate[index] > target:
                        true_positives += 1
                    else:
                        false_positives += 1
            for _ in range(config.arrivals(task, len(live))):
                add_asset(task)
            failed[task - 1] = task_failed
            live_assets[task - 1] = len(live)

    final = [
        (s if s is not None else book.stake_of(f"a{i}")) / UNIT
        for i, s in enumerate(assets.final_stake)
    ]
    size = config.combination_size
    return RunRecord(
        failed=failed,
        live_assets=live_assets,
        failure_rate=np.array(assets.failure_rate, dtype=np.float64),
        created_at=np.array(assets.created_at, dtype=np.int32),
        removed_at=np.array(assets.removed_at, dtype=np.int32),
        stake=np.array(final, dtype=np.float64),
        tasks_run=np.array(assets.tasks_run, dtype=np.int32),
        tasks_failed=np.array(assets.tasks_failed, dtype=np.int32),
        true_positives=true_positives,
        false_positives=false_positives,
        combination_members=np.array([m for m, _ in combinations], dtype=np.int32).reshape(
            -1, size
        ),
        combination_rates=np.array([r for _, r in combinations], dtype=np.float64),
    )


def run_generators(seed: int, runs: int) -> list[np.random.Generator]:
    """One independent numpy generator per run, spawned from `seed`."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(runs)]


def _run_one(args: tuple) -> RunRecord:  # type: ignore[type-arg]
    config, seed_sequence, pool, tasks_per_round = args
    with fewer_collections():  # in a worker process, or nested in the caller's (one setting)
        return simulate_run(config, np.random.default_rng(seed_sequence), pool, tasks_per_round)


def simulate_runs(
    config: CollectiveConfig,
    seed: int,
    runs: int,
    pool: np.ndarray | None,
    tasks_per_round: int = 1,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[RunRecord]:
    """`runs` runs from generators spawned from `seed`, in `workers` processes (the records
    do not depend on how many)."""
    jobs = [(config, s, pool, tasks_per_round) for s in np.random.SeedSequence(seed).spawn(runs)]
    if workers == 1 or runs == 1:
        records = []
        with fewer_collections():  # a run allocates millions of short-lived objects
            for job in jobs:
                records.append(_run_one(job))
                if progress:
                    progress(1)
        return records
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(min(workers, runs), mp_context=context) as executor:
        records = []
        for record in executor.map(_run_one, jobs):
            records.append(record)
            if progress:
                progress(1)
    return records
