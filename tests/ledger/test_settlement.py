"""Tasks on the ledger: payments, refunds, collective rewards and penalties, removal,
replacement, unstaking with a delay, oracle quorum bookkeeping, idempotence."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mercat.errors import (
    AlreadyExistsError,
    MalformedMessageError,
    StakeLockedError,
    TermsViolationError,
)
from mercat.identity import Keypair
from mercat.ledger import (
    AddOracle,
    AdvanceRound,
    IntegerRule,
    Refund,
    Release,
    ReplaceAsset,
    Report,
    Settle,
    SettleTasks,
    SignedMessage,
    TaskReports,
    Unstake,
)
from mercat.ledger import schema as s
from tests.ledger.market import Market


@pytest.fixture
def market(sqlite_url):
    m = Market(sqlite_url, users=3, oracles=3, quorum=2, unstake_delay=2)
    alice, bob, _ = m.users
    m.fund(alice, 10_000)
    m.fund(bob, 10_000)
    m.fund_pool(1_000)
    yield m
    m.ledger.close()


def test_success_pays_each_owner_and_rewards_every_asset(market):
    alice, bob, carol = market.users
    market.fund(carol, 5_000)
    a1, a2 = market.asset(alice, 990), market.asset(carol, 500)
    req = market.request(bob, 1_000, replicas=2)
    task = market.task(req, [a1, a2], [120, 80])
    assert market.ledger.escrowed(req) == 800  # the charge is held
    reports = (market.report(1, task, True), market.report(1, task, True, oracle=1))
    receipt = market.op(Settle(round=1, task=task, reports=reports))
    assert receipt.applied and receipt.result["success"]
    assert market.ledger.available(alice.public) == 10_000 - 990 + 120
    assert market.ledger.available(carol.public) == 5_000 - 500 + 80
    assert market.ledger.stake_of(a1) == 991 and market.ledger.stake_of(a2) == 501
    assert market.ledger.pool() == 998
    # its last task settled: the request closed and the rest of its escrow went back
    assert market.ledger.escrowed(req) == 0
    assert market.ledger.available(bob.public) == 10_000 - 200
    market.ledger.verify()


def test_failure_refunds_the_request_and_penalises_every_asset_blindly(market):
    alice, bob, _ = market.users
    a1, a2 = market.asset(alice, 990), market.asset(alice, 150)
    req = market.request(bob, 1_000, replicas=2)
    task = market.task(req, [a1, a2], [120, 80])
    reports = (market.report(1, task, False), market.report(1, task, False, oracle=1))
    receipt = market.op(Settle(round=1, task=task, reports=reports))
    assert receipt.result["removed"] == [a2]  # 150 - 99 = 51 <= P
    assert market.ledger.stake_of(a1) == 891 and market.ledger.stake_of(a2) == 51
    assert market.ledger.asset(a2).status == "removed"
    assert market.ledger.pool() == 1_000 + 2 * 99
    # the request closed: everything it escrowed is back, and there is nothing to refund
    assert market.ledger.escrowed(req) == 0
    assert market.ledger.available(bob.public) == 10_000
    with pytest.raises(TermsViolationError, match="closed"):
        market.op(Refund(request=req))
    market.ledger.verify()


def test_a_task_that_breaks_its_sla_is_a_failure(market):
    alice, bob, _ = market.users
    asset = market.asset(alice, 990)
    req = market.request(bob, 300)
    task = market.task(req, [asset], [100])
    reports = tuple(market.report(1, task, True, sla_met=False, oracle=i) for i in (0, 1))
    receipt = market.op(Settle(round=1, task=task, reports=reports))
    assert receipt.result["success"] and not receipt.result["sla_met"]
    assert not receipt.result["paid"]
    assert market.ledger.available(alice.public) == 10_000 - 990  # no payout
    assert market.ledger.stake_of(asset) == 990 - 99  # the penalty, not the reward
    assert market.ledger.available(bob.public) == 10_000  # all refunded
    (record,) = market.ledger.settled_tasks()
    assert record.payouts == {} and record.paid == 0
    market.ledger.verify()


def test_a_batch_settles_in_one_entry_and_a_resend_changes_nothing(market):
    alice, bob, _ = market.users
    assets = [market.asset(alice, 990) for _ in range(3)]
    tasks = [market.task(market.request(bob, 100), [a], [40]) for a in assets]
    items = tuple(
        TaskReports(t, (market.report(1, t, i != 1), market.report(1, t, i != 1, oracle=1)))
        for i, t in enumerate(tasks)
    )
    message = market.signer(market.operator).sign(SettleTasks(round=1, settlements=items))
    receipt = market.ledger.submit(message)
    assert receipt.result["settled"] == 3 and receipt.result["paid"] == 2
    before = market.snapshot()
    again = market.ledger.submit(message)
    assert not again.applied and again.entry_id == receipt.entry_id
    assert market.snapshot() == before
    assert market.ledger.available(alice.public) == 10_000 - 3 * 990 + 2 * 40
    assert {t.status for t in market.ledger.tasks()} == {"settled"}
    market.ledger.verify()


def test_settling_twice_changes_nothing_and_returns_the_first_entry(market):
    alice, bob, _ = market.users
    asset = market.asset(alice, 990)
    task = market.task(market.request(bob, 100), [asset], [100])
    reports = (market.report(1, task, True), market.report(1, task, True, oracle=1))
    message = market.signer(market.operator).sign(Settle(round=1, task=task, reports=reports))
    first = market.ledger.submit(message)
    before = market.snapshot()
    again = market.ledger.submit(message)  # the very same message, as after a crash
    other = market.op(Settle(round=1, task=task))  # a new message for the same task
    assert (again.applied, other.applied) == (False, False)
    assert again.entry_id == other.entry_id == first.entry_id
    assert market.snapshot() == before


def test_reports_relayed_before_settling_count_and_late_or_dissenting_ones_are_kept(market):
    alice, bob, _ = market.users
    asset = market.asset(alice, 990)
    task = market.task(market.request(bob, 100), [asset], [100])
    assert market.op(Report(report=market.report(1, task, True, latency_ms=90))).result == {
        "status": "pending"
    }
    dissent = market.report(1, task, False, oracle=1)
    agree = market.report(1, task, True, latency_ms=200, oracle=2)
    receipt = market.op(Settle(round=1, task=task, reports=(dissent, agree)))
    assert receipt.result["success"]
    market.oracles.append(Keypair.generate())
    market.op(AddOracle(oracle=market.oracles[3].public))
    late = market.op(Report(report=market.report(1, task, True, oracle=3)))
    assert late.result == {"status": "late"}
    with market.ledger.engine.connect() as c:
        statuses = dict(
            c.execute(select(s.oracle_reports.c.oracle, s.oracle_reports.c.status)).all()
        )
        latency = c.execute(select(s.tasks.c.latency_ms)).scalar_one()
    keys = [o.public for o in market.oracles]
    assert statuses == {keys[0]: "agree", keys[1]: "disagree", keys[2]: "agree", keys[3]: "late"}
    assert latency == 90  # lower median of the agreeing oracles' 90 and 200
    (record,) = market.ledger.settled_tasks()
    assert record.reports == 4 and record.success and record.sla_met


def test_unstake_waits_for_the_delay_in_rounds(market):
    alice, _, _ = market.users
    asset = market.asset(alice, 990)
    assert market.submit(alice, Unstake(asset=asset, amount=400)).result == {"release_round": 2}
    with pytest.raises(StakeLockedError):
        market.submit(alice, Release())
    market.op(AdvanceRound(round=1))
    with pytest.raises(StakeLockedError):
        market.submit(alice, Release())
    market.op(AdvanceRound(round=2))
    assert market.submit(alice, Release()).result == {"released": 400}
    assert market.ledger.available(alice.public) == 10_000 - 990 + 400
    market.submit(alice, Unstake(asset=asset, amount=590))
    assert market.ledger.asset(asset).status == "retired"
    assert market.ledger.unbonding(alice.public) == 590


def test_a_removed_asset_is_replaced_with_its_leftover_stake_carried_over(market):
    alice, bob, _ = market.users
    old = market.asset(alice, 150)
    task = market.task(market.request(bob, 10), [old], [10])
    failed = (market.report(1, task, False), market.report(1, task, False, oracle=1))
    market.op(Settle(round=1, task=task, reports=failed))
    assert market.ledger.asset(old).status == "removed" and market.ledger.stake_of(old) == 51
    spendable = market.ledger.available(alice.public)
    receipt = market.submit(alice, ReplaceAsset(old=old, new="fresh", stake=990))
    assert receipt.result == {"carried": 51}
    assert market.ledger.stake_of("fresh") == 990 and market.ledger.stake_of(old) == 0
    assert market.ledger.available(alice.public) == spendable - (990 - 51)
    assert market.ledger.asset(old).status == "replaced"
    market.ledger.verify()


def test_nobody_pays_out_of_an_escrow_outside_a_task(market):
    """The operator could once `pay` any escrow to any account, itself included; a request's
    escrow now leaves only through its tasks' settlement or its owner's refund."""
    _, bob, _ = market.users
    req = market.request(bob, 300)
    payload = market.signer(market.operator).sign(Refund(request=req)).payload
    forged = payload.replace(b'"op":"refund"', b'"op":"pay"').replace(
        b'"body":{', b'"body":{"to":"' + market.operator.public.encode() + b'","amount":300,'
    )
    with pytest.raises(MalformedMessageError, match="unknown operation 'pay'"):
        market.ledger.submit(SignedMessage(forged, market.operator.sign(forged)))
    assert market.ledger.escrowed(req) == 300


def test_clamped_rule_pays_at_most_up_to_the_cap_and_keeps_the_floor(sqlite_url):
    rule = IntegerRule(penalty=99, reward=5, removal=False, stake_floor=10, stake_cap=1000)
    m = Market(sqlite_url, rule=rule, users=2)
    a, b = m.users
    m.fund(a, 5_000)
    m.fund(b, 5_000)
    m.fund_pool(100)
    rich, poor = m.asset(a, 998), m.asset(a, 100)
    req = m.request(b, 10)
    t1 = m.task(req, [rich, poor], [0, 0])
    m.settle(1, t1, True)
    assert (m.ledger.stake_of(rich), m.ledger.stake_of(poor)) == (1000, 105)
    t2 = m.task(req, [rich, poor], [0, 0])
    m.settle(1, t2, False)
    assert (m.ledger.stake_of(rich), m.ledger.stake_of(poor)) == (901, 10)
    assert m.ledger.pool() == 100 - 2 - 5 + 99 + 95
    m.ledger.verify()


def test_a_batch_that_mixes_settled_and_open_tasks_is_refused_whole(market):
    alice, bob, _ = market.users
    assets = [market.asset(alice, 990) for _ in range(2)]
    first, second = (market.task(market.request(bob, 100), [a], [40]) for a in assets)
    agreeing = (market.report(1, first, True), market.report(1, first, True, oracle=1))
    market.op(Settle(round=1, task=first, reports=agreeing))
    reports = lambda t: (market.report(1, t, True), market.report(1, t, True, oracle=2))  # noqa: E731
    mixed = SettleTasks(round=1, settlements=(TaskReports(first, reports(first)),
                                               TaskReports(second, reports(second))))  # fmt: skip
    before = market.snapshot()
    with pytest.raises(AlreadyExistsError, match="is settled"):
        market.op(mixed)
    assert market.snapshot() == before
