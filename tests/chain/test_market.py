"""The market contract on boa, operation by operation: offers, requests and their escrows,
tasks opened against what owners posted (each refusal with its own error and nothing
changed), holds, settlement (payouts, margin, subsidy, charge-back, SLA, the collective
rule, removal, request closing), the stake life cycle, access control, malformed input."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import (
    MAX_BATCH,
    UINT256_MAX,
    ChainMarket,
    Settlement,
    integer_rule,
)
from mercat.errors import (
    ChainAssetExistsError,
    ChainAssetNotActiveError,
    ChainDeploymentError,
    ChainIdTakenError,
    ChainInsufficientFundsError,
    ChainMalformedError,
    ChainRewardPoolExhaustedError,
    ChainStakeBelowMinimumError,
    ChainStakeError,
    ChainStakeLockedError,
    ChainTermsViolationError,
    ChainUnauthorizedError,
    ChainUnknownAssetError,
    ChainUnknownRequestError,
    ChainUnknownTaskError,
    InvalidParameterError,
    MalformedMessageError,
    TaskAlreadySettledError,
)
from mercat.runtime.terms import PPB, Offer, RequestTerms, TaskTerms
from tests.chain.conftest import PENALTY, REWARD, S0

FUNDS = 10**9
N1 = Offer("n1", capacity={"gpu": 4}, cost=100, unit_costs={"gpu": 10}, capabilities=["cuda"])
N2 = Offer("n2", capacity={"gpu": 4}, cost=100)
M1 = Offer("m1", kind="model", cost=50, cid="bafkm1")


def snapshot(market: ChainMarket) -> dict:
    """Everything the facade can see: compared before and after a refused call."""
    return {
        "balances": {a: market.balance(a) for a in sorted(market.accounts)},
        "wallets": {a: market.wallet(a) for a in sorted(market.accounts)},
        "allowances": {a: market.allowance(a) for a in sorted(market.accounts)},
        "unbonding": {a: market.unbonding(a) for a in sorted(market.accounts)},
        "requests": {r: market.request(r) for r in sorted(market.requests)},
        "assets": {a: market.asset(a) for a in sorted(market.assets)},
        "tasks": {t: market.task(*t) for t in sorted(market.tasks)},
        "pool": market.reward_pool(),
        "held": market.held(),
        "supply": market.total_supply(),
        "round": market.current_round(),
    }


@pytest.fixture
def world(market):
    """Two servers (n1 with cuda, n2 without), a model named by CID, a requester, a funded
    pool and operator; requests r1 (2 gpu) and r2 (1 gpu, needs the model) of the
    requester, and the operator's "big" (3 gpu, cuda)."""
    alice, bob, carol = (market.new_account() for _ in range(3))
    for who in (alice, bob, carol, market.admin):
        market.fund(who, FUNDS)
    market.fund_pool(market.admin, 1000 * REWARD)
    market.register_asset(alice, "n1", S0)
    market.post_offer(alice, N1)
    market.register_asset(bob, "n2", S0)
    market.post_offer(bob, N2)
    market.register_asset(bob, "m1", S0)
    market.post_offer(bob, M1)
    market.post_request(carol, RequestTerms("r1", max_price=1000, demand={"gpu": 2}))
    market.post_request(
        carol, RequestTerms("r2", max_price=800, demand={"gpu": 1}, assets=["bafkm1"])
    )
    market.post_request(market.admin, RequestTerms("big", max_price=900, demand={"gpu": 3},
                                                      capabilities=["cuda"]))  # fmt: skip
    return market, alice, bob, carol


def task(**kw) -> TaskTerms:
    """r1 on n1: ask 100 + 2·10 = 120, charged 200 (margin 80)."""
    base = {"task": "t0", "request": "r1", "assets": ("n1",), "payouts": (120,), "charge": 200}
    base.update(kw)
    return TaskTerms(**base)


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
    # One account however it is spelled: counted once, not once per spelling.
    market.transfer(alice.lower(), market.admin, 50)
    assert market.balance(alice.lower()) == market.balance(alice) == 150
    assert market.conservation_gap() == 0


def test_a_refused_deposit_leaves_the_allowance_as_it_was(market):
    alice = market.new_account()
    market.mint(alice, 500)
    before = snapshot(market)
    with pytest.raises(ChainInsufficientFundsError, match="insufficient balance"):
        market.deposit(alice, 501)  # approved, then refused by the market's deposit
    assert market.allowance(alice) == 0
    assert snapshot(market) == before
    # An allowance the account gave the market itself is left as it set it.
    market._send("Token", "approve", [market.address("Market"), 7], alice)
    with pytest.raises(ChainInsufficientFundsError, match="insufficient balance"):
        market.deposit(alice, 501)
    assert market.allowance(alice) == 7
    market.deposit(alice, 500)  # and a deposit that goes through leaves it too
    assert (market.wallet(alice), market.balance(alice), market.allowance(alice)) == (0, 500, 7)


def test_a_deposit_under_an_unlimited_allowance_leaves_it_unlimited(market):
    """An allowance of 2**256 - 1 is unlimited (ERC-20's convention, OpenZeppelin's ERC20
    since v4): the token's transferFrom never draws it down."""
    alice = market.new_account()
    market.mint(alice, 500)
    market._send("Token", "approve", [market.address("Market"), UINT256_MAX], alice)
    with pytest.raises(ChainInsufficientFundsError, match="insufficient balance"):
        market.deposit(alice, 501)
    assert market.allowance(alice) == UINT256_MAX
    market.deposit(alice, 300)
    market.deposit(alice, 200)
    assert (market.wallet(alice), market.balance(alice)) == (0, 500)
    assert market.allowance(alice) == UINT256_MAX


def test_the_tokens_transfer_from_draws_a_finite_allowance_down_exactly(market):
    owner, spender = market.new_account(), market.new_account()
    market.mint(owner, 100)

    def allowance() -> int:
        return market._call("Token", "allowance", owner, spender)

    def pull(value: int) -> None:
        market._send("Token", "transferFrom", [owner, spender, value], spender)

    market._send("Token", "approve", [spender, 60], owner)
    pull(25)
    assert allowance() == 35
    with pytest.raises(ChainInsufficientFundsError, match="insufficient allowance"):
        pull(36)
    pull(35)
    assert allowance() == 0
    # One below the unlimited allowance is a finite one: drawn down like any other.
    market._send("Token", "approve", [spender, UINT256_MAX - 1], owner)
    pull(10)
    assert allowance() == UINT256_MAX - 11
    market._send("Token", "approve", [spender, UINT256_MAX], owner)
    pull(30)
    assert allowance() == UINT256_MAX
    assert (market.wallet(owner), market.wallet(spender)) == (0, 100)


def test_an_allowance_that_cannot_be_set_back_is_named_on_the_deposits_error(market, monkeypatch):
    alice = market.new_account()
    market.mint(alice, 500)
    send = market._send

    def failing_set_back(contract, fn, args, sender):
        if fn == "approve" and args[1] == 0:
            raise ConnectionError("node went away")
        return send(contract, fn, args, sender)

    monkeypatch.setattr(market, "_send", failing_set_back)
    with pytest.raises(ChainInsufficientFundsError, match="insufficient balance") as refused:
        market.deposit(alice, 501)
    assert "could not be set back to 0: node went away" in " ".join(refused.value.__notes__)


def test_a_request_escrows_its_max_price_and_ids_are_one_namespace(world):
    market, alice, _, carol = world
    state = market.request("r1")
    assert (state.status, state.escrow, state.owner) == ("open", 1000, carol)
    assert market.balance(carol) == FUNDS - 1800
    before = snapshot(market)
    with pytest.raises(ChainIdTakenError, match="request id already used"):
        market.post_request(carol, RequestTerms("r1", max_price=5))
    with pytest.raises(ChainIdTakenError, match="id taken by an asset"):
        market.post_request(carol, RequestTerms("n1", max_price=5))
    with pytest.raises(ChainAssetExistsError, match="id taken by a request"):
        market.register_asset(alice, "r1", S0)
    with pytest.raises(ChainInsufficientFundsError):
        market.post_request(carol, RequestTerms("r9", max_price=FUNDS))
    assert snapshot(market) == before
    assert market.conservation_gap() == 0


def test_only_the_owner_offers_an_active_asset_and_a_cid_names_one_asset(world):
    market, alice, bob, _ = world
    before = snapshot(market)
    with pytest.raises(ChainUnauthorizedError, match="not the asset owner"):
        market.post_offer(bob, N1)
    with pytest.raises(ChainUnknownAssetError):
        market.post_offer(bob, Offer("ghost"))
    with pytest.raises(ChainIdTakenError, match="CID offered by another asset"):
        market.post_offer(alice, replace(N1, kind="dataset", capacity=(), unit_costs=(),
                                         capabilities=(), cid="bafkm1"))  # fmt: skip
    assert snapshot(market) == before
    # A new offer replaces the old one: its digest is what the chain now holds.
    market.post_offer(alice, replace(N1, cost=7))
    assert market.asset("n1").cost == 7 and market.asset("n1").kind == "server"


def test_opening_moves_the_charge_into_the_hold_and_the_subsidy_from_the_operator(world):
    market, *_ = world
    operator = market.balance(market.admin)
    margin = market.open_tasks(1, [task()])
    assert [e.name for e in margin.events] == ["TaskOpened", "RoundAdvanced"]
    assert market.request("r1").escrow == 800 and market.task(1, "t0").held == 200
    assert market.request("r1").status == "assigned" and market.request("r1").served == PPB
    assert market.balance(market.admin) == operator  # a margin takes nothing from it
    subsidised = task(task="t1", request="r2", assets=("n2", "m1"), payouts=(150, 50), charge=120)
    market.open_tasks(2, [subsidised])
    assert market.task(2, "t1").held == 200  # 120 charged + 80 subsidy
    assert market.balance(market.admin) == operator - 80
    assert market.current_round() == 2
    assert market.asset("n2").open_tasks == 1 and market.asset("m1").open_tasks == 1
    assert market.conservation_gap() == 0


# fmt: off
BAD_TASKS = [
    # (what, tasks, margin_to, error, reason)
    ("charge beyond the escrow", [task(charge=1001)], "operator", ChainInsufficientFundsError,
     "escrow too small"),
    ("server below its ask", [task(payouts=(119,))], "operator", ChainTermsViolationError,
     "below its ask"),
    ("capability missing", [task(request="big", assets=("n2",), payouts=(100,))], "operator",
     ChainTermsViolationError, "lacks a capability"),
    ("over capacity", [task(), task(task="t1", request="big", payouts=(130,), charge=130)],
     "operator", ChainTermsViolationError, "capacity"),
    ("named asset left out", [task(request="r2", assets=("n2",), payouts=(100,))], "operator",
     ChainTermsViolationError, "bind every asset"),
    ("named asset below its price", [task(request="r2", assets=("n2", "m1"),
                                          payouts=(100, 49))],
     "operator", ChainTermsViolationError, "below its price"),
    ("an asset the request does not name", [task(assets=("n1", "m1"), payouts=(120, 50))],
     "operator", ChainTermsViolationError, "does not name"),
    ("unknown request", [task(request="r9")], "operator", ChainUnknownRequestError, None),
    ("unknown asset", [task(assets=("n9",))], "operator", ChainUnknownAssetError, None),
    ("two replicas for one", [task(assets=("n1", "n2"), payouts=(120, 100))], "operator",
     ChainTermsViolationError, "replicas"),
    ("served twice", [task(), task(task="t1")], "operator", ChainTermsViolationError,
     "served more than once"),
    ("the pool subsidising", [task(charge=100)], "pool", ChainTermsViolationError,
     "cannot be subsidised"),
    ("an id twice", [task(), task()], "operator", ChainMalformedError, "task ids repeat"),
    ("no task", [], "operator", ChainMalformedError, "at least one task"),
    ("payouts that do not match", [task(payouts=(120, 1))], "operator", ChainMalformedError,
     "payouts do not match"),
]
# fmt: on


@pytest.mark.parametrize(
    ("tasks", "margin_to", "error", "reason"),
    [case[1:] for case in BAD_TASKS],
    ids=[case[0] for case in BAD_TASKS],
)
def test_a_batch_against_the_owners_terms_is_refused_and_changes_nothing(
    world, tasks, margin_to, error, reason
):
    market, *_ = world
    before = snapshot(market)
    with pytest.raises(error, match=reason):
        market.open_tasks(1, tasks, margin_to)
    assert snapshot(market) == before
    assert market.task(1, "t0").status == "unknown"


def test_refusals_of_the_requests_life_cycle(world):
    market, alice, _, carol = world
    market.open_tasks(1, [task()])
    before = snapshot(market)
    with pytest.raises(ChainTermsViolationError, match="served in another round"):
        market.open_tasks(2, [task(task="t9", charge=0, payouts=(120,))])
    with pytest.raises(ChainIdTakenError, match="task already opened"):
        market.open_tasks(1, [task(request="r2", assets=("n2", "m1"), payouts=(100, 50))])
    with pytest.raises(ChainTermsViolationError, match="only an open request"):
        market.withdraw_request(carol, "r1")
    with pytest.raises(ChainUnauthorizedError, match="only the requester or the admin"):
        market.withdraw_request(alice, "r2")
    with pytest.raises(ChainStakeLockedError, match="runs an open task"):
        market.unstake(alice, "n1", S0)  # its stake answers for the open task
    assert snapshot(market) == before
    market.post_request(carol, RequestTerms("old", max_price=10, demand={"gpu": 1}, expires=0))
    with pytest.raises(ChainTermsViolationError, match="request expired"):
        market.open_tasks(1, [task(task="t5", request="old", charge=10)])
    refunded = market.withdraw_request(market.admin, "old").named("RequestClosed")
    assert refunded[0].args["refunded"] == 10
    with pytest.raises(ChainTermsViolationError, match="request is closed"):
        market.open_tasks(1, [task(task="t5", request="old", charge=10)])
    assert market.conservation_gap() == 0


def test_a_paid_task_pays_owners_the_margin_and_closes_its_request(world):
    market, alice, bob, carol = world
    t = task(request="r2", assets=("n2", "m1"), payouts=(110, 50), charge=300)
    market.open_tasks(1, [t])
    before = snapshot(market)
    result = market.settle_tasks(1, [Settlement(t, "operator", paid=True)])
    names = [e.name for e in result.events]
    assert names == ["StakeUpdated", "StakeUpdated", "RequestClosed", "TaskSettled"]
    settled = result.named("TaskSettled")[0].args
    assert (settled["paid"], settled["charge"], settled["margin"], settled["refunded"]) == (
        True, 300, 140, 500,
    )  # fmt: skip
    assert market.balance(bob) == before["balances"][bob] + 160  # n2 and m1 are bob's
    assert market.balance(market.admin) == before["balances"][market.admin] + 140
    assert market.balance(carol) == before["balances"][carol] + 500
    assert market.stake("n2") == market.stake("m1") == S0 + REWARD
    assert market.reward_pool() == before["pool"] - 2 * REWARD
    assert market.request("r2").status == "closed" and market.task(1, t.task).status == "settled"
    assert market.balance(alice) == before["balances"][alice]
    assert market.conservation_gap() == 0


def test_a_task_that_does_not_pay_refunds_the_charge_and_the_subsidy_and_penalises(world):
    """Failed, or succeeded late: the verdict the authority hands the market is the same."""
    market, _, bob, carol = world
    t = task(request="r2", assets=("n2", "m1"), payouts=(150, 50), charge=120)  # subsidy 80
    operator, escrow = market.balance(market.admin), market.request("r2").escrow
    market.open_tasks(1, [t])
    market.settle_tasks(1, [Settlement(t, "operator", paid=False)])
    assert market.balance(market.admin) == operator  # the subsidy came back
    assert market.balance(carol) == FUNDS - 1800 + escrow  # all of r2's escrow back
    assert market.stake("n2") == market.stake("m1") == S0 - PENALTY
    assert market.reward_pool() == 1000 * REWARD + 2 * PENALTY
    assert market.balance(bob) == FUNDS - 2 * S0
    assert market.conservation_gap() == 0


def test_a_pool_held_margin_feeds_the_pool(world):
    market, *_ = world
    t = task()
    market.open_tasks(1, [t], "pool")
    pool = market.reward_pool()
    market.settle_tasks(1, [Settlement(t, "pool", paid=True)])
    assert market.reward_pool() == pool + 80 - REWARD
    assert market.conservation_gap() == 0


def test_settlement_refusals_change_nothing(world):
    market, alice, *_ = world
    t = task()
    market.open_tasks(1, [t])
    before = snapshot(market)
    with pytest.raises(ChainMalformedError, match="differ from the opened ones"):
        market.settle_tasks(1, [Settlement(replace(t, payouts=(200,)), "operator", True)])
    with pytest.raises(ChainMalformedError, match="differ from the opened ones"):
        market.settle_tasks(1, [Settlement(t, "pool", True)])
    with pytest.raises(ChainUnknownTaskError):
        market.settle_tasks(2, [Settlement(t, "operator", True)])
    with pytest.raises(ChainUnauthorizedError, match="not the settlement authority"):
        market.settle_tasks(1, [Settlement(t, "operator", True)], sender=alice)
    assert snapshot(market) == before
    market.settle_tasks(1, [Settlement(t, "operator", False)])
    after = snapshot(market)
    for paid in (True, False):  # settled once: either verdict again is refused
        with pytest.raises(TaskAlreadySettledError):
            market.settle_tasks(1, [Settlement(t, "operator", paid)])
    assert snapshot(market) == after


def test_pool_exhaustion_refuses_the_whole_batch(market):
    owner, requester = market.new_account(), market.new_account()
    market.fund(owner, 10 * S0)
    market.fund(requester, 1000)
    for name in ("a1", "a2"):
        market.register_asset(owner, name, S0)
        market.post_offer(owner, Offer(name, capacity={"gpu": 1}))
    market.fund_pool(owner, REWARD)  # pays one reward, not two
    market.post_request(requester, RequestTerms("r", max_price=10, demand={"gpu": 1}))
    market.post_request(requester, RequestTerms("s", max_price=10, demand={"gpu": 1}))
    tasks = [TaskTerms("t1", "r", ("a1",), (0,), 0), TaskTerms("t2", "s", ("a2",), (0,), 0)]
    market.open_tasks(0, tasks)
    before = snapshot(market)
    with pytest.raises(ChainRewardPoolExhaustedError):
        market.settle_tasks(0, [Settlement(t, "operator", True) for t in tasks])
    assert snapshot(market) == before
    market.settle_tasks(0, [Settlement(tasks[0], "operator", True)])  # one reward fits
    assert market.reward_pool() == 0 and market.stake("a1") == S0 + REWARD


def test_removal_leaves_a_removed_asset_alone_and_its_stake_with_it(world):
    market, alice, *_ = world
    market.register_asset(alice, "weak", PENALTY + 5)  # one failure from removal
    market.post_offer(alice, Offer("weak", capacity={"gpu": 8}))
    for r in ("x1", "x2"):
        market.post_request(market.admin, RequestTerms(r, max_price=10, demand={"gpu": 1}))
    first, second = (TaskTerms(t, r, ("weak",), (0,), 0) for t, r in (("a", "x1"), ("b", "x2")))
    market.open_tasks(1, [first, second])
    result = market.settle_tasks(
        1, [Settlement(first, "operator", False), Settlement(second, "operator", False)]
    )
    removed = result.named("AssetRemoved")
    assert [e.args["stake"] for e in removed] == [5]
    updates = [(e.args["before"], e.args["after"]) for e in result.named("StakeUpdated")]
    assert updates == [(PENALTY + 5, 5), (5, 5)]  # the second failure finds it removed
    assert (market.asset("weak").status, market.stake("weak")) == ("removed", 5)
    with pytest.raises(ChainAssetNotActiveError):
        market.open_tasks(2, [task(assets=("weak",), payouts=(0,), charge=0)])
    with pytest.raises(ChainAssetNotActiveError):
        market.post_offer(alice, Offer("weak"))
    market.replace_asset(alice, "weak", "strong", S0)  # 5 carried over
    assert (market.asset("weak").status, market.asset("strong").stake) == ("replaced", S0)
    assert market.conservation_gap() == 0


def test_capacity_and_the_fixed_cost_count_over_the_round(world):
    market, _, _, carol = world
    market.post_request(carol, RequestTerms("r3", max_price=900, demand={"gpu": 2}))
    market.open_tasks(1, [task()])  # n1: 2 of 4 gpu, fixed cost paid
    second = task(task="t1", request="r3", payouts=(20,), charge=20)  # unit costs only
    market.open_tasks(1, [second])
    market.post_request(carol, RequestTerms("r4", max_price=900, demand={"gpu": 1}))
    before = snapshot(market)
    with pytest.raises(ChainTermsViolationError, match="capacity"):
        market.open_tasks(1, [task(task="t2", request="r4", payouts=(10,), charge=10)])
    assert snapshot(market) == before
    market.open_tasks(2, [task(task="t2", request="r4", payouts=(110,), charge=110)])  # new round


def test_the_stake_life_cycle(world):
    market, alice, bob, _ = world
    before = snapshot(market)
    with pytest.raises(ChainStakeBelowMinimumError):
        market.unstake(alice, "n1", S0 - PENALTY)  # would leave P, at the removal level
    with pytest.raises(ChainInsufficientFundsError, match="insufficient stake"):
        market.unstake(alice, "n1", S0 + 1)
    with pytest.raises(ChainUnauthorizedError, match="not the asset owner"):
        market.unstake(bob, "n1", 1)
    with pytest.raises(ChainStakeLockedError):
        market.release(alice)  # nothing unstaked yet
    with pytest.raises(ChainStakeBelowMinimumError):
        market.register_asset(alice, "low", PENALTY)
    assert snapshot(market) == before
    market.unstake(alice, "n1", 1000)  # partial: stays active above the minimum
    market.advance_round(1)
    market.unstake(alice, "n1", S0 - 1000)  # the rest: the asset retires
    assert market.asset("n1").status == "retired" and market.unbonding(alice) == S0
    with pytest.raises(ChainAssetNotActiveError):
        market.add_stake(alice, "n1", 10)
    with pytest.raises(ChainAssetNotActiveError):
        market.open_tasks(1, [task()])
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


def test_stake_cap_of_a_clamped_rule():
    capped = ChainMarket.deploy(BoaBackend(), integer_rule("coll-sr", S0, "0.01", PENALTY))
    owner = capped.new_account()
    capped.fund(owner, 10 * S0)
    with pytest.raises(ChainStakeError, match="above the cap"):
        capped.register_asset(owner, "a", S0 + 1)
    capped.register_asset(owner, "a", S0)
    with pytest.raises(ChainStakeError, match="above the cap"):
        capped.add_stake(owner, "a", 1)


def test_only_the_admin_opens_withdraws_runs_the_clock_and_names_the_authority(world):
    market, alice, _, carol = world
    before = snapshot(market)
    art, address = market._contracts["Market"]
    for fn, args in (
        ("open_tasks", [1, [], 0]),
        ("advance_round", [1]),
        ("set_authority", [alice]),
    ):
        with pytest.raises(ChainUnauthorizedError, match="only the admin"):
            market.backend.transact(address, art.encode_call(fn, args), carol)
    assert snapshot(market) == before


def test_set_authority_hands_settlement_over(world):
    market, alice, *_ = world
    t = task()
    market.open_tasks(1, [t])
    art, address = market._contracts["Market"]
    market.backend.transact(address, art.encode_call("set_authority", [alice]), market.admin)
    with pytest.raises(ChainUnauthorizedError):
        market.settle_tasks(1, [Settlement(t, "operator", True)])  # the admin no longer may
    market.settle_tasks(1, [Settlement(t, "operator", True)], sender=alice)
    assert market.task(1, "t0").status == "settled"


def test_bad_input_is_refused_before_anything_is_sent(world):
    market, alice, _, _ = world
    before = snapshot(market)
    too_many = [task(task=f"t{i}") for i in range(MAX_BATCH + 1)]
    bad_calls = [
        lambda: market.open_tasks(1, too_many),
        lambda: market.open_tasks(
            1, [task(assets=tuple(f"a{i}" for i in range(33)), payouts=(0,) * 33)]
        ),
        lambda: market.open_tasks(1, [task()], "nobody"),
        lambda: market.open_tasks(-1, [task()]),
        lambda: market.open_tasks(1, ["t0"]),
        lambda: market.settle_tasks(1, [Settlement(task(), "operator", 1)]),
        lambda: market.register_asset(alice, "white space", S0),
        lambda: market.register_asset("alice", "n3", S0),
        lambda: market.register_asset("0x" + "zz" * 20, "n3", S0),  # not hex
        lambda: market.transfer(alice, alice[:-1] + "G", 1),
        lambda: market.transfer(alice, alice.swapcase().replace("0X", "0x"), 1),  # checksum
        lambda: market.balance("0x" + "g" * 40),
        lambda: market.deposit(alice, 1.5),
        lambda: market.withdraw(alice, 0),
        lambda: market.fund_pool(alice, 2**256),
        lambda: market.post_offer(alice, {"asset": "n1"}),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidParameterError):
            call()
    with pytest.raises(MalformedMessageError):  # the terms types check themselves
        RequestTerms("r5", max_price=0)
    assert snapshot(market) == before


def test_malformed_tasks_reaching_the_contract_are_refused(world):
    market, *_ = world
    art, address = market._contracts["Market"]
    before = snapshot(market)
    r1, n1 = market._id("request", "r1"), market._id("asset", "n1")
    for assets, payouts, fraction in (([n1, n1], [0, 0], PPB), ([], [], PPB),
                                      ([n1], [1, 2], PPB), ([n1], [120], 0),
                                      ([n1], [120], PPB + 1)):  # fmt: skip
        data = art.encode_call("open_tasks", [1, [(7, r1, assets, payouts, 200, fraction)], 0])
        with pytest.raises(ChainMalformedError):
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
