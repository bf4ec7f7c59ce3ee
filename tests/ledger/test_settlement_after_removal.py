"""Settling a task whose asset an earlier settlement removed while the task was open: the
price still follows the outcome, the removed asset's stake is left alone (no reward, no
second penalty, which would take it below zero), and it is not reported removed again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mercat.ledger import schema as s
from tests.ledger.market import Market


@pytest.fixture
def market(sqlite_url):
    m = Market(sqlite_url, users=2, oracles=1, quorum=1)
    alice, bob = m.users
    m.fund(alice, 10_000)
    m.fund(bob, 10_000)
    m.fund_pool(1_000)
    yield m
    m.ledger.close()


def removed_while_open(market):
    """a2 (stake 150) joins task 2, then task 1 fails and removes it (150 - 99 = 51 <= P)."""
    alice, bob = market.users
    a1, a2 = market.asset(alice, 990), market.asset(alice, 150)
    first = market.task(market.request(bob, 200), [a1, a2], [120, 80])
    second_request = market.request(bob, 50)
    second = market.task(second_request, [a2, a1], [30, 20])
    assert market.settle(1, first, False).result["removed"] == [a2]
    assert market.ledger.stake_of(a2) == 51 and market.ledger.stake_of(a1) == 891
    return a1, a2, second, second_request


def stake_rows(market, task):
    with market.ledger.engine.connect() as c:
        return c.execute(
            select(s.task_assets.c.asset, s.task_assets.c.stake_before,
                   s.task_assets.c.stake_after, s.task_assets.c.removed)
            .where(s.task_assets.c.task == task)
            .order_by(s.task_assets.c.position)
        ).all()  # fmt: skip


def test_a_failure_does_not_penalise_the_removed_asset_again(market):
    a1, a2, second, request = removed_while_open(market)
    pool = market.ledger.pool()
    receipt = market.settle(1, second, False)
    assert receipt.applied and receipt.result["removed"] == []
    assert market.ledger.stake_of(a2) == 51  # 51 - 99 would be negative
    assert market.ledger.stake_of(a1) == 891 - 99
    assert market.ledger.pool() == pool + 99  # only a1's penalty
    assert market.ledger.escrowed(request) == 50  # the price went back to the request
    assert market.ledger.asset(a2).status == "removed"
    assert [tuple(r) for r in stake_rows(market, second)] == [
        (a2, 51, 51, False),
        (a1, 891, 792, False),
    ]
    market.ledger.verify()


def test_a_success_pays_the_owner_but_does_not_reward_the_removed_asset(market):
    a1, a2, second, _ = removed_while_open(market)
    alice, _ = market.users
    cash, pool = market.ledger.available(alice.public), market.ledger.pool()
    receipt = market.settle(1, second, True)
    assert receipt.result["success"] and receipt.result["removed"] == []
    assert market.ledger.available(alice.public) == cash + 30 + 20  # both payouts
    assert market.ledger.stake_of(a2) == 51 and market.ledger.stake_of(a1) == 892
    assert market.ledger.pool() == pool - 1  # only a1's reward
    assert [tuple(r) for r in stake_rows(market, second)] == [
        (a2, 51, 51, False),
        (a1, 891, 892, False),
    ]
    market.ledger.verify()
