"""Seed 000's adversaries and counter-measures on the adversarial engine: each strategy does
what it says (traced task by task), counter-measures move the adversary's profit the way
they should on fixed seeds, bad plug-ins and the engines that cannot run adversaries are
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from mercat.errors import InvalidParameterError, UnknownNameError
from mercat.scenarios.collective_adversarial import (
    ADVERSARY,
    Economics,
    simulate,
    simulate_run,
)
from mercat.scenarios.collective_adversaries import (
    ADVERSARIES,
    Adversary,
    Collusion,
    Honest,
    Identity,
    IntermittentFailer,
    Moves,
    Sybil,
    TaskView,
    Whitewasher,
    adversary,
)
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_countermeasures import CounterMeasures, OwnerMemory
from mercat.workbench.scenario import COMMON
from mercat.workbench.simulation import Steps, simulation

SMALL = CollectiveConfig(mechanism="coll-stake", assets=20, tasks=1500, replacement_interval=100)


def _view(
    stake: float, penalty_if_failed: float = 1.0, allies=(), role="asset", record=()
) -> TaskView:
    return TaskView(1, 0, role, stake, 10.0, 1.0, penalty_if_failed, tuple(allies), 3, record)


def test_the_registry_lists_the_five():
    assert ADVERSARIES.names()[:5] == [
        "honest", "whitewasher", "sybil", "intermittent", "collusion"
    ]  # fmt: skip
    with pytest.raises(UnknownNameError, match="collective adversary"):
        adversary("nope")


def test_a_whitewasher_re_enters_under_a_fresh_identity_right_after_each_removal():
    record = simulate_run(SMALL, Whitewasher(failure_rate=0.3), seed=3)
    mine = record.owner == ADVERSARY
    removed = record.removed_at[mine]
    assert (removed >= 0).sum() >= 3  # it was removed several times ...
    created = set(record.created_at[mine].tolist())
    for task in removed[removed >= 0]:
        assert task in created  # ... and every time a new identity entered at once
    assert record.identities == (removed >= 0).sum() + 1
    # its honest twin leaves for good at its first removal
    twin = simulate_run(SMALL, Whitewasher(failure_rate=0.3).honest_twin(), seed=3)
    assert twin.identities == 1 and twin.removed_at[twin.owner == ADVERSARY][0] >= 0


def test_under_a_rule_that_never_removes_the_whitewasher_withdraws_a_low_stake_and_re_enters():
    config = SMALL.with_(mechanism="coll-rep")
    record = simulate_run(config, Whitewasher(failure_rate=0.3, reenter_below=0.5), seed=2)
    mine = record.owner == ADVERSARY
    left = record.left_at[mine]
    assert (record.removed_at[mine] < 0).all() and (left >= 0).sum() >= 1
    assert set(left[left >= 0].tolist()) <= set(record.created_at[mine].tolist())


def test_the_intermittent_failer_fails_on_purpose_only_when_its_expected_penalty_is_low():
    agent = IntermittentFailer(penalty_threshold=0.3, stake_threshold=0.5)
    assert agent.works(_view(4.9)) and not agent.works(_view(5.0))  # the stake trigger
    assert not agent.works(_view(1.5, penalty_if_failed=0.0))  # Free: failing costs nothing
    assert agent.works(_view(1.5, penalty_if_failed=0.3))
    # teammates whose records say they fail half their tasks share the blame: ~0.5³ < 0.3
    halves = ((990, 495), (990, 495), (990, 495))
    share = (495 + 10 * 0.01) / (990 + 10)  # the record with the prior of 10 tasks at 1 %
    assert agent.expected_penalty(_view(1.5, record=halves)) == pytest.approx((1 - share) ** 3)
    assert not agent.works(_view(1.5, record=halves))
    assert agent.works(_view(1.5, record=((0, 0),) * 3))  # the prior: others are reliable
    record = simulate_run(SMALL, IntermittentFailer(), seed=4, trace=True)
    shirks = works = 0
    for task in record.trace:
        for asset, owner, before in zip(task.assets, task.owners, task.before, strict=True):
            if owner != ADVERSARY:
                continue
            on_purpose = asset in task.shirked
            # coll-stake: the penalty is P = 1; a healthy market's teammates do not fail a
            # task often enough to bring the expected penalty under 0.3
            assert on_purpose == (before >= 5.0)
            shirks += on_purpose
            works += not on_purpose
            if on_purpose:
                assert task.failed
    assert shirks >= 3 and works >= 3


def test_colluders_fail_only_without_their_ally_and_the_penalty_lands_on_honest_assets():
    record = simulate_run(
        SMALL.with_(assets=8, tasks=2000), Collusion(stake_threshold=0.5), seed=5, trace=True
    )
    shirked = [t for t in record.trace if t.shirked]
    assert len(shirked) >= 3
    for task in shirked:
        assert task.owners.count(ADVERSARY) == 1  # the server alone: no allied app on it
        honest = [i for i, o in enumerate(task.owners) if o != ADVERSARY]
        assert len(honest) == 3
        for i in honest:  # every honest asset of the task paid the full penalty
            assert task.before[i] - task.after[i] == pytest.approx(1.0)
    for task in record.trace:
        if task.owners.count(ADVERSARY) == 2:
            assert not task.shirked  # with its app on the task the server works
    assert record.honest_loss >= 3 * len(shirked) - 1e-9


def test_colluders_share_their_stakes_after_every_task():
    agent = Collusion()
    from mercat.scenarios.collective_adversaries import TaskOutcome

    moves = agent.step(TaskOutcome(1, (7,), True, (7,), {6: 10.0, 7: 8.0}, (), 10.0, 1.0))
    assert dict(moves.restake) == {6: 9.0, 7: 9.0}


def test_sybil_identities_split_the_stake_and_are_picked_more_often_under_uniform_selection():
    assert [i.stake_share for i in Sybil(identities=4).identities()] == [0.25] * 4
    config = SMALL.with_(mechanism="free")
    sybil = simulate_run(config, Sybil(identities=4), seed=6)
    twin = simulate_run(config, Sybil(identities=4).honest_twin(), seed=6)
    assert sybil.identities == 4 and twin.identities == 1
    assert sybil.adversary_tasks > 2.5 * twin.adversary_tasks


def test_an_honest_owner_is_its_own_twin():
    first = simulate_run(SMALL, Honest(), seed=1)
    second = simulate_run(SMALL, Honest().honest_twin(), seed=1)
    assert first.adversary_profit == second.adversary_profit
    assert np.array_equal(first.failed, second.failed)


def test_the_entry_bond_costs_exactly_one_bond_per_identity_and_changes_nothing_else():
    plain = simulate_run(SMALL, Whitewasher(failure_rate=0.3), seed=3)
    bonded = simulate_run(
        SMALL, Whitewasher(failure_rate=0.3), CounterMeasures(entry_bond=2.0), seed=3
    )
    assert np.array_equal(plain.failed, bonded.failed)
    assert bonded.adversary_profit == pytest.approx(plain.adversary_profit - 2.0 * plain.identities)


def test_reputation_decay_cuts_a_profitable_whitewashers_tasks_and_profit():
    def owner() -> Adversary:
        return Whitewasher(failure_rate=0.1)  # earns more in fees than it loses in stake

    plain = simulate(SMALL, owner, runs=6, seed=11)
    countered = simulate(SMALL, owner, CounterMeasures(reputation_half_life=500), runs=6, seed=11)
    profit = np.mean([r.adversary_profit for r in plain])
    assert profit > 0
    assert np.mean([r.adversary_profit for r in countered]) < 0.8 * profit
    assert sum(r.adversary_tasks for r in countered) < 0.8 * sum(r.adversary_tasks for r in plain)


def test_ramp_up_keeps_a_fresh_identity_out_of_most_tasks_until_it_succeeds():
    def first_tasks(measures: CounterMeasures) -> int:
        records = simulate(SMALL.with_(tasks=200), Honest, measures, runs=6, seed=12)
        return sum(r.adversary_tasks for r in records)

    assert first_tasks(CounterMeasures(ramp_up_tasks=50)) < 0.5 * first_tasks(CounterMeasures())


def test_reputation_is_remembered_per_owner_and_halves_with_its_half_life():
    memory = OwnerMemory(half_life=10)
    memory.penalize("o", 0)
    memory.penalize("o", 0)
    assert memory.remembered("o", 10) == pytest.approx(1.0)
    assert memory.remembered("other", 10) == 0.0
    measures = CounterMeasures(reputation_half_life=10, reputation_scale=1.0, ramp_up_tasks=4)
    assert measures.reputation_factor(1.0) == 0.5 and measures.ramp_factor(1) == 0.4
    assert measures.label == "ramp-up+reputation" and CounterMeasures().label == "none"


@pytest.mark.parametrize(
    ("config", "owner", "match"),
    [
        (SMALL, Sybil(identities=10), "removal level"),  # S0/10 = P: removed on arrival
        (SMALL.with_(combinations_per_asset=1), Honest(), "combinations"),
    ],
)
def test_impossible_markets_are_one_line_errors(config, owner, match):
    with pytest.raises(InvalidParameterError, match=match) as info:
        simulate_run(config, owner)
    assert "\n" not in str(info.value)


class _Cheat(Adversary):
    name = "cheat"
    summary = "moves stake it does not have"

    def identities(self):
        return (Identity(), Identity())

    def step(self, outcome):
        return Moves(restake=dict.fromkeys(outcome.stakes, 100.0))


def test_a_plugin_adversary_that_mints_stake_is_a_one_line_error():
    with pytest.raises(InvalidParameterError, match="moved stake it does not hold") as info:
        simulate_run(SMALL, _Cheat())
    assert "\n" not in str(info.value)


class _Undecided(Adversary):
    name = "undecided"
    summary = "answers works with None"

    def identities(self):
        return (Identity(),)

    def works(self, view):
        return None


class _Flood(Adversary):
    name = "flood"
    summary = "enters a new identity after every task"

    def identities(self):
        return (Identity(),)

    def step(self, outcome):
        return Moves(enter=(Identity(),) * 60_000)


@pytest.mark.parametrize(
    ("owner", "match"),
    [(_Undecided(), "true or false"), (_Flood(), "more than 100000 identities")],
)
def test_a_plugin_adversary_out_of_bounds_is_a_one_line_error(owner, match):
    with pytest.raises(InvalidParameterError, match=match) as info:
        simulate_run(SMALL, owner)
    assert "\n" not in str(info.value)


def test_bad_options_and_economics_are_one_line_errors():
    with pytest.raises(InvalidParameterError, match="at most 10000"):
        adversary("sybil", identities=10**9)
    with pytest.raises(InvalidParameterError, match="bad options"):
        adversary("sybil", bogus=1)
    with pytest.raises(InvalidParameterError):
        CounterMeasures(entry_bond=-1)
    with pytest.raises(InvalidParameterError):
        Economics(fee=float("nan"))


def _workbench(**changes):
    sim = simulation("collective")
    values = {p.name: p.default for p in (*COMMON, *sim.parameters)}
    values.update({"assets": 20, "tasks": 600, **changes})
    return sim, values


@pytest.mark.parametrize("engine", ["fast", "pipeline"])
def test_the_fast_and_pipeline_engines_refuse_adversaries_in_one_line(engine):
    sim, values = _workbench(engine=engine, adversary="sybil")
    with pytest.raises(InvalidParameterError, match='engine = "reference"') as info:
        sim.build(values)
    assert "\n" not in str(info.value)
    sim, values = _workbench(engine=engine, entry_bond=1.0)
    with pytest.raises(InvalidParameterError, match="counter-measures"):
        sim.build(values)


def test_the_workbench_runs_the_adversary_and_its_twin_on_the_same_seeds():
    sim, values = _workbench(engine="reference", adversary="whitewasher", entry_bond=1.0)
    out = sim.run(sim.build(values), 2, 7, Steps(every=200))
    runs = out.tables["runs"]
    assert len(runs) == 2
    assert np.allclose(runs["adversary_gain"], runs["adversary_profit"] - runs["twin_profit"])
    assert out.summary["adversary_gain_mean"] == pytest.approx(runs["adversary_gain"].mean())
    steps = out.tables["steps"]
    assert sorted(steps["task"].unique()) == [200, 400, 600]


def test_the_bond_costs_a_sybil_one_bond_per_extra_identity_over_its_twin():
    from mercat.scenarios.experiments_adversaries import cell

    plain = cell(SMALL, lambda: Sybil(identities=4), CounterMeasures(), [1, 2])
    bonded = cell(SMALL, lambda: Sybil(identities=4), CounterMeasures(entry_bond=2.0), [1, 2])
    assert bonded["gain"] == pytest.approx(plain["gain"] - 3 * 2.0)


def test_under_free_failing_on_purpose_earns_exactly_the_work_it_saves():
    config = SMALL.with_(mechanism="free")
    shirker = simulate_run(config, IntermittentFailer(), seed=9)
    twin = simulate_run(config, IntermittentFailer().honest_twin(), seed=9)
    assert shirker.deliberate_failures == shirker.adversary_tasks > 0  # Free: no penalty ever
    assert shirker.adversary_profit - twin.adversary_profit == pytest.approx(
        Economics().work_cost * shirker.deliberate_failures
    )
    assert shirker.task_failure_rate > twin.task_failure_rate
