"""The contract implements mercat.incentives.collective's rule: event for event against
`settle` on random task outcomes, for every mechanism; whole random scenarios match the
Python reference; tokens are conserved over random scenarios; the oracle quorum decides
verdicts and settles on them.

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
from mercat.chain.book import ChainBook, nonzero
from mercat.chain.market import ChainMarket, Settlement, Verdict, integer_rule
from mercat.chain.reference import ReferenceBook
from mercat.chain.scenario import ScenarioConfig, random_scenario, replay
from mercat.errors import (
    ChainQuorumNotReachedError,
    ChainUnauthorizedError,
    TaskAlreadySettledError,
)
from mercat.incentives.collective import MECHANISMS, settle
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from tests.chain.conftest import PENALTY, REWARD, S0, UNIT

MECHANISM_NAMES = sorted(MECHANISMS)
PERIOD = 25  # tasks between replacements of removed assets: one open and one settle call


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


@pytest.mark.slow
@pytest.mark.parametrize("name", MECHANISM_NAMES)
def test_contract_reproduces_settle_event_for_event(name):
    """100 tasks of 4 assets drawn from 12, outcomes from per-asset failure rates, opened
    and settled 25 at a time, removed assets replaced between (their remaining stake
    carried over, topped up to S0). Every StakeUpdated and AssetRemoved event must be what
    `settle` computes with the integer rule on the assets still active, task after task (an
    asset removed by an earlier task of the same batch is left alone), and that must be
    what `settle` computes with the mechanism's float rule (in tokens) times the unit."""
    rule = integer_rule(name, S0, "0.01", PENALTY)
    float_rule = MECHANISMS[name].rule(initial_stake=S0 / UNIT, task_target=0.01, penalty=99)
    market = ChainMarket.deploy(BoaBackend(), rule)
    owner, requester = market.new_account(), market.new_account()
    market.fund(owner, 10**15)
    market.fund(requester, 10**6)
    market.fund_pool(owner, 10**12)
    rng = np.random.default_rng(20261123)
    stakes: dict[str, int] = {}
    float_stakes: dict[str, float] = {}
    failure: dict[str, float] = {}
    active: list[str] = []
    removed: set[str] = set()
    replaced: set[str] = set()

    def add_asset(asset: str, old: str | None = None) -> None:
        if old is None:
            market.register_asset(owner, asset, S0)
        else:
            market.replace_asset(owner, old, asset, S0)
            replaced.add(old)
        market.post_offer(owner, Offer(asset))  # a server at no cost
        stakes[asset] = S0
        float_stakes[asset] = S0 / UNIT
        failure[asset] = float(rng.choice([0.0, 0.02, 0.3]))
        active.append(asset)

    for i in range(12):
        add_asset(f"a{i}")
    next_asset = 12
    for start in range(0, 100, PERIOD):
        for old in sorted(removed - replaced):
            add_asset(f"a{next_asset}", old)
            next_asset += 1
        tasks, outcomes = [], []
        for k in range(start, start + PERIOD):
            assets = tuple(str(a) for a in rng.choice(active, 4, replace=False))
            market.post_request(requester, RequestTerms(f"r{k}", max_price=1, replicas=4))
            tasks.append(TaskTerms(f"t{k}", f"r{k}", assets, (0,) * 4, 0))
            outcomes.append(all(rng.random() >= failure[a] for a in assets))
        market.open_tasks(0, tasks)
        items = [Settlement(t, "operator", ok) for t, ok in zip(tasks, outcomes, strict=True)]
        result = market.settle_tasks(0, items)

        expected_updates, expected_removals = [], []
        for t, success in zip(tasks, outcomes, strict=True):
            live = [a for a in t.assets if a not in removed]
            after = settle(stakes, live, success, rule) if live else None
            in_tokens = settle(float_stakes, live, success, float_rule) if live else None
            if after is not None:
                assert in_tokens.removed == after.removed
                assert [round(in_tokens.stakes[a] * UNIT) for a in live] == [
                    after.stakes[a] for a in live
                ]
                float_stakes = dict(in_tokens.stakes)
            for a in t.assets:
                new = after.stakes[a] if a in live else stakes[a]
                expected_updates.append((t.task, a, stakes[a], new))
            if after is not None:
                expected_removals += [(t.task, a, after.stakes[a]) for a in after.removed]
                stakes = dict(after.stakes)
                removed.update(after.removed)
                for a in after.removed:
                    active.remove(a)
        name_of = market.name_of
        updates = [
            (name_of(e.args["task"]), name_of(e.args["asset"]), e.args["before"], e.args["after"])
            for e in result.named("StakeUpdated")
        ]
        assert updates == expected_updates
        removals = [
            (name_of(e.args["task"]), name_of(e.args["asset"]), e.args["stake"])
            for e in result.named("AssetRemoved")
        ]
        assert removals == expected_removals
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


def _small_rule(name: str) -> IntegerRule:
    return IntegerRule(**integer_rule(name, 2500, "0.01", 990).__dict__)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coll-stake", "coll-sr"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_scenario_matches_the_reference(name, seed):
    rule = _small_rule(name)
    ops = random_scenario(rule, seed, ScenarioConfig(stake=2500, rounds=4))
    assert any(op.expect for op in ops)  # refusals are part of the replay
    reference = ReferenceBook(rule, unit=1000, unstake_delay_rounds=2)
    chain = ChainBook(rule, unit=1000, unstake_delay_rounds=2)
    assert replay(chain, ops) == replay(reference, ops)
    assert nonzero(chain.books()) == nonzero(reference.books())
    assert chain.statuses() == reference.statuses()
    chain.verify()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), failure_rate=st.sampled_from([0.0, 0.3, 0.9]))
def test_conservation_and_non_negativity_over_random_scenarios(seed, failure_rate):
    rule = _small_rule("coll-sr")
    config = ScenarioConfig(stake=2500, rounds=3, failure_rate=failure_rate, pool_funding=60)
    ops = random_scenario(rule, seed, config)
    book = ChainBook(rule, unit=1000, unstake_delay_rounds=2)
    replay(book, ops)
    market = book.market
    assert market.conservation_gap() == 0
    # Every token ever minted is in a wallet or in the market (nothing created, nothing lost).
    assert market.total_supply() == market.held() + sum(market.wallet(a) for a in market.accounts)
    balances = book.books()
    assert all(value >= 0 for name, value in balances.items() if name != "world")


def test_quorum_decides_verdicts_and_settles_on_them():
    rule = integer_rule("coll-stake", S0, "0.01", PENALTY)
    market = ChainMarket.deploy(BoaBackend(), rule, oracles=5)  # q = 3
    assert market.threshold == 3
    owner = market.new_account()
    market.fund(owner, 10 * S0)
    market.fund_pool(owner, S0)
    market.register_asset(owner, "a", S0)
    market.post_offer(owner, Offer("a"))
    for r in ("r0", "r1"):
        market.post_request(owner, RequestTerms(r, max_price=1))
    tasks = [TaskTerms("t0", "r0", ("a",), (0,), 0), TaskTerms("t1", "r1", ("a",), (0,), 0)]
    market.open_tasks(0, tasks)
    o = market.oracles
    market.report(o[0], 0, [Verdict("t0", True, True)])
    market.report(o[1], 0, [Verdict("t0", False, True)])  # disagrees: counts for itself only
    market.report(o[2], 0, [Verdict("t0", True, True)])
    assert market.verdict(0, "t0") == (False, False, False)
    with pytest.raises(ChainQuorumNotReachedError):  # anyone may ask; not decided yet
        market.settle_tasks(0, [Settlement(tasks[0], "operator", False)], sender=owner)
    result = market.report(o[3], 0, [Verdict("t0", True, True)])  # the third agreeing
    assert [e.name for e in result.events] == ["Reported", "QuorumReached"]
    assert market.verdict(0, "t0") == (True, True, True)
    # The quorum's verdict, not the caller's, settles the task.
    market.settle_tasks(0, [Settlement(tasks[0], "operator", False)], sender=owner)
    assert market.task(0, "t0").status == "settled" and market.stake("a") == S0 + REWARD
    late = market.report(o[4], 0, [Verdict("t0", False, False)])
    assert [e.args["late"] for e in late.events] == [True]
    with pytest.raises(TaskAlreadySettledError, match="already reported"):
        market.report(o[0], 0, [Verdict("t0", True, True)])
    with pytest.raises(ChainUnauthorizedError, match="not an oracle"):
        market.report(owner, 0, [Verdict("t1", True, True)])
    art, address = market._contracts["Market"]
    settle_t1 = market._settlements([Settlement(tasks[1], "operator", True)])
    with pytest.raises(ChainUnauthorizedError, match="not the settlement authority"):
        market.backend.transact(
            address, art.encode_call("settle_tasks", [0, settle_t1]), market.admin
        )
    # Met its SLA late: success without the SLA settles as a failure.
    for oracle in o[:3]:
        market.report(oracle, 0, [Verdict("t1", True, False)])
    market.settle_tasks(0, [Settlement(tasks[1], "operator", True)])
    assert market.stake("a") == S0 + REWARD - PENALTY
    assert market.conservation_gap() == 0
