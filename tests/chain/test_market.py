"""The market contract on boa: escrow, payment, refund, stakes, settlement idempotency,
access control, and every refusal with its own error and nothing changed."""

from __future__ import annotations

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import ChainMarket, integer_rule
from mercat.errors import (
    ChainAssetExistsError,
    ChainAssetNotActiveError,
    ChainDeploymentError,
    ChainInsufficientFundsError,
    ChainInvalidTaskError,
    ChainRequestError,
    ChainRewardPoolExhaustedError,
    ChainStakeBelowMinimumError,
    ChainStakeError,
    ChainStakeLockedError,
    ChainUnauthorizedError,
    ChainUnknownAssetError,
    ChainUnknownRequestError,
    InvalidParameterError,
    TaskAlreadySettledError,
)
from tests.chain.conftest import PENALTY, REWARD, S0

FUNDS = 10**9


def snapshot(market: ChainMarket) -> dict:
    """Everything the facade can see: compared before and after a refused call."""
    return {
        "balances": {a: market.balance(a) for a in sorted(market.accounts)},
        "wallets": {a: market.wallet(a) for a in sorted(market.accounts)},
        "escrows": {r: market.escrow_of(r) for r in sorted(market.requests)},
        "assets": {a: market.asset(a) for a in sorted(market.assets)},
        "pool": market.reward_pool(),
        "held": market.held(),
        "supply": market.total_supply(),
        "round": market.current_round(),
    }


@pytest.fixture
def world(market):
    """Two providers with one asset each, a requester with an escrow, a funded pool."""
    alice, bob, req = market.new_account(), market.new_account(), market.new_account()
    for who in (alice, bob, req):
        market.fund(who, FUNDS)
    market.fund_pool(alice, 1000 * REWARD)
    market.register_asset(alice, 1, S0)
    market.register_asset(bob, 2, S0)
    market.escrow(req, 7, 5000)
    return market, alice, bob, req


def test_fund_deposit_withdraw_and_conservation(market):
    alice = market.new_account()
    market.mint(alice, 500)
    assert (market.wallet(alice), market.balance(alice)) == (500, 0)
    market.deposit(alice, 300)
    assert (market.wallet(alice), market.balance(alice), market.held()) == (200, 300, 300)
    market.withdraw(alice, 100)
    assert (market.wallet(alice), market.balance(alice), market.held()) == (300, 200, 200)
    assert market.total_supply() == 500
    assert market.conservation_gap() == 0


def test_success_pays_each_owner_from_the_escrow(world):
    market, alice, bob, _ = world
    before = (market.balance(alice), market.balance(bob), market.escrow_of(7).amount)
    result = market.settle(0, 0, [2, 1], True, request=7, payouts=[300, 100])  # bob's first
    assert market.balance(alice) == before[0] + 100
    assert market.balance(bob) == before[1] + 300
    assert market.escrow_of(7).amount == before[2] - 400
    assert [e.name for e in result.events] == ["StakeUpdated", "StakeUpdated", "TaskSettled"]
    assert result.events[-1].args["paid"] == 400
    assert market.stake(1) == market.stake(2) == S0 + REWARD
    assert market.conservation_gap() == 0


def test_failure_pays_nothing_and_takes_the_penalty_into_the_pool(world):
    market, alice, _, _ = world
    pool, balance, escrow = market.reward_pool(), market.balance(alice), market.escrow_of(7)
    market.settle(0, 0, [1, 2], False, request=7, payouts=[100, 100])
    assert market.balance(alice) == balance and market.escrow_of(7) == escrow
    assert market.stake(1) == S0 - PENALTY
    assert market.reward_pool() == pool + 2 * PENALTY
    assert market.conservation_gap() == 0


def test_refund_returns_the_rest_and_closes_the_request(world):
    market, _, _, req = world
    market.settle(0, 0, [1], True, request=7, payouts=[1000])
    balance = market.balance(req)
    market.refund(7)
    assert market.balance(req) == balance + 4000
    assert market.escrow_of(7).closed and market.escrow_of(7).amount == 0
    with pytest.raises(ChainRequestError, match="request closed"):
        market.refund(7)
    with pytest.raises(ChainRequestError, match="request closed"):
        market.escrow(req, 7, 10)
    assert market.conservation_gap() == 0


def test_a_second_settle_of_the_same_id_reverts_and_changes_nothing(world):
    market, *_ = world
    market.settle(3, 9, [1, 2], True, request=7, payouts=[10, 10])
    assert market.is_settled(3, 9) and not market.is_settled(3, 10) and not market.is_settled(4, 9)
    before = snapshot(market)
    for outcome in (True, False):  # same id, either outcome: refused
        with pytest.raises(TaskAlreadySettledError):
            market.settle(3, 9, [1, 2], outcome, request=7, payouts=[10, 10])
    assert snapshot(market) == before


def test_settled_bitmap_keeps_ids_apart_across_words():
    market = ChainMarket.deploy(BoaBackend(), integer_rule("free", S0, "0.01", PENALTY))
    owner = market.new_account()
    market.fund(owner, S0)
    market.register_asset(owner, 1, S0)
    ids = [(0, 0), (0, 255), (0, 256), (1, 0), (2**64, 2**200 + 3)]
    for round_, task in ids:
        market.settle(round_, task, [1], True)
    for round_, task in ids:
        assert market.is_settled(round_, task)
    for round_, task in [(0, 1), (0, 254), (0, 257), (1, 256), (2**64, 2**200 + 2)]:
        assert not market.is_settled(round_, task)


def test_only_the_authority_settles_and_only_the_admin_runs_the_clock(world):
    market, alice, _, req = world
    before = snapshot(market)
    market_art, address = market._contracts["Market"]
    args = market.settlement_args(0, 0, [1], True)
    with pytest.raises(ChainUnauthorizedError, match="not the settlement authority"):
        market.backend.transact(address, market_art.encode_call("settle", args), alice)
    for fn, fn_args in (("refund", [7]), ("advance_round", [1]), ("set_authority", [alice])):
        with pytest.raises(ChainUnauthorizedError, match="only the admin"):
            market.backend.transact(address, market_art.encode_call(fn, fn_args), req)
    assert snapshot(market) == before
    assert not market.is_settled(0, 0)


def test_set_authority_hands_settlement_over(world):
    market, alice, *_ = world
    art, address = market._contracts["Market"]
    market.backend.transact(address, art.encode_call("set_authority", [alice]), market.admin)
    args = market.settlement_args(0, 0, [1], True)
    market.backend.transact(address, art.encode_call("settle", args), alice)
    assert market.is_settled(0, 0)
    with pytest.raises(ChainUnauthorizedError):
        market.settle(0, 1, [1], True)  # the admin no longer may


def test_pool_exhaustion_refuses_the_whole_settlement(market):
    owner = market.new_account()
    market.fund(owner, 10 * S0)
    market.register_asset(owner, 1, S0)
    market.register_asset(owner, 2, S0)
    market.fund_pool(owner, REWARD)  # pays one reward, not two
    before = snapshot(market)
    with pytest.raises(ChainRewardPoolExhaustedError) as info:
        market.settle(0, 0, [1, 2], True)
    assert info.value.reason == "market: reward pool exhausted"
    assert snapshot(market) == before and not market.is_settled(0, 0)
    market.settle(0, 0, [1], True)  # one reward fits
    assert market.reward_pool() == 0 and market.stake(1) == S0 + REWARD


def test_removal_keeps_the_stake_with_the_asset_until_unstaked_or_replaced(world):
    market, alice, _, _ = world
    stake = 2 * PENALTY + 5  # two failures bring it to 5 <= P: removed
    market.register_asset(alice, 3, stake)
    market.settle(0, 0, [3], False)
    assert market.asset(3).status == "active"
    result = market.settle(0, 1, [3], False)
    removed = [e for e in result.events if e.name == "AssetRemoved"]
    assert removed and removed[0].args["stake"] == 5
    assert (market.asset(3).status, market.stake(3)) == ("removed", 5)
    # A task that ran on it before removal still settles: it is paid, the rule skips it.
    balance = market.balance(alice)
    result = market.settle(0, 2, [1, 3], True, request=7, payouts=[10, 20])
    assert [e.args["asset"] for e in result.events if e.name == "StakeUpdated"] == [1]
    assert market.balance(alice) == balance + 30 and market.stake(3) == 5
    with pytest.raises(ChainAssetExistsError):  # ids are never reused: replace under a new id
        market.register_asset(alice, 3, S0)
    with pytest.raises(ChainAssetNotActiveError, match="only a removed asset"):
        market.replace_asset(alice, 1, 4, S0)
    balance = market.balance(alice)
    result = market.replace_asset(alice, 3, 4, S0)  # 5 carried over, S0 - 5 from the balance
    assert result.events[0].args["carried"] == 5
    assert market.balance(alice) == balance - (S0 - 5)
    assert (market.asset(3).status, market.stake(3)) == ("replaced", 0)
    assert (market.asset(4).status, market.stake(4)) == ("active", S0)
    assert market.conservation_gap() == 0


def test_removed_stake_can_be_unstaked(market):
    owner = market.new_account()
    market.fund(owner, 10 * S0)
    market.register_asset(owner, 1, PENALTY + 5)
    market.settle(0, 0, [1], False)  # 5 left: removed
    market.unstake(owner, 1, 5)  # a removed asset may take out whatever it has left
    assert (market.stake(1), market.unbonding(owner)) == (0, 5)
    assert market.conservation_gap() == 0


def test_stake_limits(market):
    owner = market.new_account()
    market.fund(owner, 10 * S0)
    before = snapshot(market)
    with pytest.raises(ChainStakeBelowMinimumError):
        market.register_asset(owner, 1, PENALTY)  # at the removal level S <= P
    with pytest.raises(ChainInsufficientFundsError):
        market.register_asset(owner, 1, 11 * S0)
    assert snapshot(market) == before
    market.register_asset(owner, 1, PENALTY + 1)  # the least stake not at the level
    capped = ChainMarket.deploy(BoaBackend(), integer_rule("coll-sr", S0, "0.01", PENALTY))
    other = capped.new_account()
    capped.fund(other, 10 * S0)
    with pytest.raises(ChainStakeError, match="above the cap"):
        capped.register_asset(other, 1, S0 + 1)
    capped.register_asset(other, 1, S0)
    with pytest.raises(ChainStakeError, match="above the cap"):
        capped.add_stake(other, 1, 1)


def test_unstake_waits_the_delay_in_rounds(world):
    market, alice, bob, _ = world
    before = snapshot(market)
    with pytest.raises(ChainStakeBelowMinimumError):
        market.unstake(alice, 1, S0 - PENALTY)  # would leave P, at the removal level
    with pytest.raises(ChainInsufficientFundsError, match="insufficient stake"):
        market.unstake(alice, 1, S0 + 1)
    with pytest.raises(ChainUnauthorizedError, match="not the asset owner"):
        market.unstake(bob, 1, 1)
    with pytest.raises(ChainUnknownAssetError):
        market.unstake(alice, 99, 1)
    with pytest.raises(ChainStakeLockedError):
        market.release(alice)  # nothing unstaked yet
    assert snapshot(market) == before
    market.unstake(alice, 1, 1000)  # partial: stays active above the minimum
    market.advance_round(1)
    market.unstake(alice, 1, S0 - 1000)  # the rest: the asset retires
    assert market.asset(1).status == "retired" and market.unbonding(alice) == S0
    with pytest.raises(ChainAssetNotActiveError):
        market.add_stake(alice, 1, 10)
    with pytest.raises(ChainUnknownAssetError):  # a retired asset takes no task
        market.settle(0, 0, [99], True)
    market.settle(1, 0, [1, 2], False)  # the rule leaves the retired asset alone
    assert market.stake(1) == 0
    with pytest.raises(ChainStakeLockedError):
        market.release(alice)  # delay 2: the first unstake matures at round 2
    balance = market.balance(alice)
    market.advance_round(2)
    market.advance_round(1)  # a lower round changes nothing
    assert market.current_round() == 2
    market.release(alice)
    assert market.balance(alice) == balance + 1000 and market.unbonding(alice) == S0 - 1000
    market.advance_round(3)
    market.release(alice)
    assert market.balance(alice) == balance + S0 and market.unbonding(alice) == 0
    assert market.conservation_gap() == 0


def test_escrow_refusals(world):
    market, alice, _, req = world
    before = snapshot(market)
    with pytest.raises(ChainRequestError, match="another requester"):
        market.escrow(alice, 7, 10)
    for outcome in (True, False):  # the price must be escrowed whatever the outcome
        with pytest.raises(ChainInsufficientFundsError, match="escrow too small"):
            market.settle(0, 0, [1, 2], outcome, request=7, payouts=[5000, 1])
    with pytest.raises(ChainUnknownAssetError):
        market.settle(0, 0, [1, 99], True)
    with pytest.raises(ChainUnknownRequestError):
        market.settle(0, 0, [1], True, request=99, payouts=[1])
    with pytest.raises(ChainUnknownRequestError):
        market.refund(99)
    with pytest.raises(ChainInsufficientFundsError, match="insufficient balance"):
        market.escrow(req, 8, FUNDS)
    assert snapshot(market) == before


def test_bad_input_is_refused_before_anything_is_sent(world):
    market, alice, _, _ = world
    before = snapshot(market)
    bad_calls = [
        lambda: market.settle(0, 0, [1, 1], True),  # repeated asset
        lambda: market.settle(0, 0, [], True),
        lambda: market.settle(0, 0, list(range(1, 18)), True),  # more than 16 assets
        lambda: market.settle(0, 0, [1, 2], True, request=7, payouts=[1]),
        lambda: market.settle(-1, 0, [1], True),
        lambda: market.settle(0, 0, [1], 1),  # outcome must be a bool
        lambda: market.deposit(alice, 1.5),
        lambda: market.withdraw(alice, 0),
        lambda: market.escrow(alice, 7, -3),
        lambda: market.register_asset("alice", 3, S0),
        lambda: market.fund_pool(alice, 2**256),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidParameterError):
            call()
    assert snapshot(market) == before


def test_malformed_task_reaching_the_contract_is_refused(world):
    market, *_ = world
    art, address = market._contracts["Market"]
    before = snapshot(market)
    for assets, payouts in (([2, 1], []), ([1, 1], []), ([], []), ([1, 2], [1])):
        data = art.encode_call("settle", [0, 0, 7, assets, payouts, True])
        with pytest.raises(ChainInvalidTaskError):
            market.backend.transact(address, data, market.admin)
    assert snapshot(market) == before


def test_deployment_refuses_rules_it_cannot_run():
    rule = integer_rule("coll-stake", S0, "0.01", PENALTY)
    with pytest.raises(ChainDeploymentError, match="removal level"):
        ChainMarket.deploy(BoaBackend(), rule, min_stake=PENALTY)
    with pytest.raises(ChainDeploymentError, match="half the oracles"):
        ChainMarket.deploy(BoaBackend(), rule, oracles=4, threshold=2)
    with pytest.raises(InvalidParameterError):
        ChainMarket.deploy(BoaBackend(), rule, oracles=33)
