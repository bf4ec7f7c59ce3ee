"""Provider profit (seed 002, eq. 2) and requester utility (eq. 3) from settled records,
by hand and from a ledger."""

from __future__ import annotations

from fractions import Fraction

from mercat.ledger import Settle
from mercat.oracle.economics import SettledTask, provider_profit, requester_utility
from tests.ledger.market import Market

P, Q, R = "p" * 64, "q" * 64, "r" * 64


def records() -> list[SettledTask]:
    return [
        SettledTask(1, "a", R, True, True, 10, price=100, payouts={P: 60, Q: 40},
                    providers=(P, Q), reports=3),
        # succeeded but late: an SLA violation pays nothing (the charge went back)
        SettledTask(1, "b", R, True, False, 90, price=50, payouts={}, providers=(P,), reports=2),
        SettledTask(2, "c", R, False, False, 0, price=70, payouts={}, providers=(P, Q), reports=3),
    ]  # fmt: skip


def test_eq2_penalises_each_violated_task_by_lambda_times_its_reports():
    # P: 60 + (0 - 4·2) + (0 - 4·3) = 40 ; Q: 40 + (0 - 4·3) = 28
    assert provider_profit(records(), P, 4) == 40
    assert provider_profit(records(), Q, 4) == 28
    assert provider_profit(records(), P, 0) == 60


def test_eq3_values_satisfaction_against_the_price_paid():
    # the late task "b" was refunded: it costs nothing and satisfies partially at most
    assert requester_utility(records(), R) == 0 + 0 + 0
    values = {(1, "a"): 130, (1, "b"): 80, (2, "c"): 90}
    assert requester_utility(records(), R, values, Fraction(1, 2)) == 30 + 40 + 0


def test_records_come_from_the_ledger(tmp_path):
    m = Market(f"sqlite:///{tmp_path}/ledger.db", users=3, oracles=2, quorum=1)
    provider, requester, other = m.users
    for user in m.users:
        m.fund(user, 10_000)
    m.fund_pool(1_000)
    a, b = m.asset(provider, 990), m.asset(other, 990)
    req = m.request(requester, 1_000)
    t1 = m.task(req, [a, b], [60, 40])
    t2 = m.task(req, [a], [50])
    m.op(Settle(round=1, task=t1, reports=(m.report(1, t1, True), m.report(1, t1, True, oracle=1))))
    m.settle(1, t2, True, sla_met=False)
    tasks = m.ledger.settled_tasks()
    assert [t.reports for t in tasks] == [2, 1]
    assert provider_profit(tasks, provider.public, 5) == 60 + 0 - 5  # t2 was late: unpaid
    assert provider_profit(tasks, other.public, 5) == 40
    assert requester_utility(tasks, requester.public) == 0 + 0
    m.ledger.close()
