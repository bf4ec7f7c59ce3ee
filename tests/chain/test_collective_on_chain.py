"""The contract implements mercat.incentives.collective's rule: event for event against
`settle` on random task outcomes, for every mechanism, and whole random scenarios against
the Python reference of the market.

Parameters exact in base units (UNIT = 10^4 base units per token): P = 99 tokens, target
F = 1 % so R = F·P/(1-F) = 1 token, S0 = 990 tokens, floor S0/1000 = 0.99 token = 9900
base units. With integer amounts `settle` computes in exact integer arithmetic, so the
contract must match it exactly, with no rounding to account for.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import ChainMarket, integer_rule
from mercat.chain.reference import reference_run
from mercat.chain.scenario import ScenarioConfig, random_scenario, run_on_chain
from mercat.incentives.collective import MECHANISMS, settle
from tests.chain.conftest import PENALTY, REWARD, S0, UNIT

MECHANISM_NAMES = sorted(MECHANISMS)


@pytest.mark.parametrize("name", MECHANISM_NAMES)
def test_integer_rule_is_the_float_rule_times_the_unit(name):
    float_rule = MECHANISMS[name].rule(initial_stake=10, task_target=0.01, penalty=1)
    int_rule = integer_rule(name, S0, "0.01", PENALTY)
    scale = PENALTY  # the float rule has P = 1 token
    assert (int_rule.penalty, int_rule.reward) == (PENALTY, REWARD)
    assert int_rule.reward == pytest.approx(float_rule.reward * scale, rel=1e-12)
    for field in ("stake_floor", "stake_cap"):
        value = getattr(float_rule, field)
        assert getattr(int_rule, field) == (None if value is None else pytest.approx(value * scale))
    assert (int_rule.removal, int_rule.moves_stakes) == (
        float_rule.removal,
        float_rule.moves_stakes,
    )


@pytest.mark.parametrize("name", MECHANISM_NAMES)
def test_contract_reproduces_settle_event_for_event(name):
    """160 tasks of 4 assets drawn from 12, outcomes from per-asset failure rates, removed
    assets replaced every 25 tasks (their remaining stake carried over, topped up to S0);
    after each task the contract's StakeUpdated and AssetRemoved events must be exactly
    what `settle` computes with the integer rule, and that must be what `settle` computes
    with the mechanism's float rule (in tokens) times the unit, removals included."""
    rule = integer_rule(name, S0, "0.01", PENALTY)
    float_rule = MECHANISMS[name].rule(initial_stake=S0 / UNIT, task_target=0.01, penalty=99)
    float_stakes: dict[int, float] = {}
    market = ChainMarket.deploy(BoaBackend(), rule)
    owner = market.new_account()
    market.fund(owner, 10**15)
    market.fund_pool(owner, 10**12)
    rng = np.random.default_rng(20261123)
    stakes: dict[int, int] = {}
    failure: dict[int, float] = {}
    active: list[int] = []
    removed: set[int] = set()
    replaced: set[int] = set()

    def add_asset(asset: int, old: int | None = None) -> None:
        if old is None:
            market.register_asset(owner, asset, S0)
        else:
            market.replace_asset(owner, old, asset, S0)
            replaced.add(old)
        stakes[asset] = S0
        float_stakes[asset] = S0 / UNIT
        failure[asset] = float(rng.choice([0.0, 0.02, 0.3]))
        active.append(asset)

    for asset in range(1, 13):
        add_asset(asset)
    next_asset = 13
    for task in range(160):
        if task % 25 == 24:
            for old in sorted(removed - replaced):
                add_asset(next_asset, old)
                next_asset += 1
        assets = sorted(int(a) for a in rng.choice(active, 4, replace=False))
        success = all(rng.random() >= failure[a] for a in assets)
        expected = settle(stakes, assets, success, rule)
        in_tokens = settle(float_stakes, assets, success, float_rule)
        assert in_tokens.removed == expected.removed
        assert [round(in_tokens.stakes[a] * UNIT) for a in assets] == [
            expected.stakes[a] for a in assets
        ]
        float_stakes = dict(in_tokens.stakes)

        result = market.settle(0, task, assets, success)

        updates = [
            (e.args["asset"], e.args["stake"]) for e in result.events if e.name == "StakeUpdated"
        ]
        assert updates == ([(a, expected.stakes[a]) for a in assets] if rule.moves_stakes else [])
        removals = [
            (e.args["asset"], e.args["stake"]) for e in result.events if e.name == "AssetRemoved"
        ]
        assert removals == [(a, expected.stakes[a]) for a in expected.removed]
        stakes = dict(expected.stakes)
        for a in expected.removed:
            active.remove(a)
            removed.add(a)
    for a, stake in stakes.items():  # the stored state agrees with the events
        expected_state = (
            (0, "replaced")
            if a in replaced
            else (stake, "removed")
            if a in removed
            else (stake, "active")
        )
        assert (market.stake(a), market.asset(a).status) == expected_state
    assert market.conservation_gap() == 0
    if MECHANISMS[name].removal:
        assert removed and replaced  # the sequence exercises removal and replacement


@pytest.mark.parametrize("name", MECHANISM_NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_scenario_matches_the_reference(name, seed):
    rule = integer_rule(name, 990, "0.01", 99)  # UNIT = 1: the smallest exact amounts
    ops = random_scenario(rule, seed, ScenarioConfig(tasks=60, failure_rate=0.3))
    assert any(op.expect for op in ops)  # refusals are part of the replay
    market = ChainMarket.deploy(BoaBackend(), rule, unstake_delay_rounds=2)
    run = run_on_chain(market, ops)
    state, settlements = reference_run(rule, ops, min_stake=100, unstake_delay_rounds=2)
    assert run.state == state
    assert run.settlements == settlements
    assert market.conservation_gap() == 0
    assert market.held() == state.total


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), failure_rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]))
def test_conservation_and_non_negativity_over_random_scenarios(seed, failure_rate):
    rule = integer_rule("coll-sr", 990, "0.01", 99)
    config = ScenarioConfig(tasks=15, failure_rate=failure_rate, pool_funding=20)
    ops = random_scenario(rule, seed, config)
    market = ChainMarket.deploy(BoaBackend(), rule, unstake_delay_rounds=2)
    run = run_on_chain(market, ops)
    assert market.conservation_gap() == 0
    # Every token ever minted is in a wallet or in the market (nothing created, nothing lost).
    assert market.total_supply() == market.held() + sum(market.wallet(a) for a in market.accounts)
    assert min(run.state.balances.values()) >= 0 and run.state.pool >= 0


def test_quorum_settles_once_q_oracles_agree():
    rule = integer_rule("coll-stake", S0, "0.01", PENALTY)
    market = ChainMarket.deploy(BoaBackend(), rule, oracles=5)  # q = 3
    assert market.threshold == 3
    owner = market.new_account()
    market.fund(owner, 10 * S0)
    market.fund_pool(owner, S0)
    market.register_asset(owner, 1, S0)
    o = market.oracles
    market.report(o[0], 0, 0, [1], True)
    market.report(o[1], 0, 0, [1], False)  # disagrees: counts for its own version only
    market.report(o[2], 0, 0, [1], True)
    assert not market.is_settled(0, 0)
    result = market.report(o[3], 0, 0, [1], True)  # third agreeing report settles
    assert market.is_settled(0, 0) and market.stake(1) == S0 + REWARD
    assert [e.name for e in result.events] == [
        "Reported", "QuorumReached", "StakeUpdated", "TaskSettled",
    ]  # fmt: skip
    late = market.report(o[4], 0, 0, [1], True)
    assert [e.args["late"] for e in late.events] == [True]
    assert market.stake(1) == S0 + REWARD  # the late report changed nothing
    from mercat.errors import ChainUnauthorizedError, TaskAlreadySettledError

    with pytest.raises(TaskAlreadySettledError, match="already reported"):
        market.report(o[0], 0, 0, [1], True)
    with pytest.raises(ChainUnauthorizedError, match="not an oracle"):
        market.report(owner, 0, 1, [1], True)
    with pytest.raises(ChainUnauthorizedError, match="not the settlement authority"):
        art, address = market._contracts["Market"]
        market.backend.transact(
            address,
            art.encode_call("settle", market.settlement_args(0, 1, [1], True)),
            market.admin,
        )
    # The facade's settle() sends the first q reports.
    market.settle(0, 1, [1], False)
    assert market.is_settled(0, 1) and market.stake(1) == S0 + REWARD - PENALTY
    assert market.conservation_gap() == 0
    assert UNIT > 0
