import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercat.errors import InvalidParameterError, UnknownNameError
from mercat.incentives.collective import MECHANISMS, CollectiveRule, mechanism, settle

names = st.sampled_from(sorted(MECHANISMS))
outcome_sequences = st.lists(
    st.tuples(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True), st.booleans()),
    max_size=200,
)


def replay(rule, sequence, stake0=5.0, assets=8):
    stakes = {a: stake0 for a in range(assets)}
    live = set(stakes)
    history = []
    for task_assets, success in sequence:
        task_assets = [a for a in task_assets if a in live]
        if not task_assets:
            continue
        result = settle(stakes, task_assets, success, rule)
        history.append((dict(stakes), task_assets, success, result))
        stakes = result.stakes
        live -= set(result.removed)
    return stakes, live, history


@given(names, outcome_sequences, st.sampled_from([0.01, 0.05, 0.2]), st.booleans())
def test_stakes_of_live_assets_never_go_negative(name, sequence, target, inclusive):
    rule = mechanism(name).rule(5.0, target, removal_inclusive=inclusive)
    stakes, live, _ = replay(rule, sequence)
    assert all(stakes[a] >= 0 for a in live)
    assert all(v >= 0 for v in stakes.values())


@given(outcome_sequences)
def test_free_never_changes_a_stake(sequence):
    stakes, live, _ = replay(mechanism("free").rule(5.0, 0.01), sequence)
    assert set(stakes.values()) == {5.0}
    assert live == set(range(8))


@given(names, outcome_sequences)
def test_settlement_touches_only_the_task_and_is_pure(name, sequence):
    rule = mechanism(name).rule(5.0, 0.05)
    _, _, history = replay(rule, sequence)
    for before, task_assets, success, result in history:
        for asset, stake in before.items():
            if asset not in task_assets:
                assert result.stakes[asset] == stake
        for asset in task_assets:
            assert result.stakes[asset] == rule.updated_stake(before[asset], success)
        assert set(result.removed) <= set(task_assets)


@given(outcome_sequences)
def test_clamped_mechanisms_stay_within_their_bounds(sequence):
    rule = mechanism("coll-rep").rule(5.0, 0.05)
    stakes, live, _ = replay(rule, sequence)
    assert live == set(range(8))  # coll-rep never removes
    assert all(5.0 / 1000 <= v <= 5.0 for v in stakes.values())


def test_removal_level_readings():
    rule = CollectiveRule(penalty=1.0, reward=0.25, removal=True, removal_inclusive=True)
    assert settle({"a": 2.0}, ["a"], False, rule).removed == ("a",)  # S = 1 <= P
    strict = CollectiveRule(penalty=1.0, reward=0.25, removal=True, removal_inclusive=False)
    assert settle({"a": 2.0}, ["a"], False, strict).removed == ()  # S = 1 is not < P
    assert settle({"a": 1.5}, ["a"], False, strict).removed == ("a",)


def test_input_mapping_is_not_modified():
    stakes = {"a": 3.0, "b": 3.0}
    settle(stakes, ["a"], False, mechanism("coll-stake").rule(3.0, 0.1))
    assert stakes == {"a": 3.0, "b": 3.0}


def test_registry_members_are_named_documented_and_unique():
    assert set(MECHANISMS) == {"free", "coll-stake", "coll-rep", "coll-sr"}
    for name, spec in MECHANISMS.items():
        assert spec.name == name and spec.description
    assert mechanism("COLL-SR") is MECHANISMS["coll-sr"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: settle({"a": 1.0}, [], True, r), InvalidParameterError, "at least one"),
        (lambda r: settle({"a": 1.0}, ["a", "a"], True, r), InvalidParameterError, "repeat"),
        (lambda r: settle({"a": 1.0}, ["b"], True, r), InvalidParameterError, "without a stake"),
        (lambda r: settle({"a": float("inf")}, ["a"], True, r), InvalidParameterError, "finite"),
        (lambda r: mechanism("nope"), UnknownNameError, "known: free"),
        (
            lambda r: CollectiveRule(penalty=-1, reward=0, removal=False),
            InvalidParameterError,
            "penalty",
        ),
        (
            lambda r: CollectiveRule(1, 0, False, stake_floor=2, stake_cap=1),
            InvalidParameterError,
            "exceeds",
        ),
    ],
)
def test_bad_input(call, error, message):
    rule = mechanism("coll-sr").rule(5.0, 0.05)
    with pytest.raises(error, match=message):
        call(rule)


def test_each_mechanisms_rule_moves_stakes_exactly_when_it_should():
    # Free keeps every stake unless asked (free_moves_stakes, the ablation); the collective
    # mechanisms always move them.
    for name, m in MECHANISMS.items():
        rule = m.rule(initial_stake=10.0, task_target=0.01)
        assert rule.moves_stakes == (name != "free")
        assert (rule.updated_stake(10.0, False) < 10.0) == (name != "free")
        assert m.rule(10.0, 0.01, free_moves_stakes=True).updated_stake(10.0, False) < 10.0


def test_a_floor_equal_to_the_cap_is_allowed():
    rule = CollectiveRule(penalty=1.0, reward=0.1, removal=False, stake_floor=5.0, stake_cap=5.0)
    assert rule.updated_stake(5.0, True) == rule.updated_stake(5.0, False) == 5.0
    with pytest.raises(InvalidParameterError, match="exceeds stake_cap"):
        CollectiveRule(penalty=1.0, reward=0.1, removal=False, stake_floor=5.5, stake_cap=5.0)
