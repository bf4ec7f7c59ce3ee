"""What a requester reads of its request: closed only once every task's verdict is known."""

from __future__ import annotations

from mercat.identity import Keypair
from mercat.node.requester import Requester

from .test_agents_listings import request_view, task_view


class _Node:
    def __init__(self, view):  # type: ignore[no-untyped-def]
        self.view = view

    def request_view(self, request):  # type: ignore[no-untyped-def]
        return self.view


def _view(status, verdicts):  # type: ignore[no-untyped-def]
    tasks = [task_view(f"t{i}", verdict=v, charge=5) for i, v in enumerate(verdicts)]
    return request_view("r1", status, tasks)


PAID = {"paid": True, "output": "bafy-output", "success": True, "sla_met": True,
        "latency_ms": 10}  # fmt: skip


def test_a_request_settled_on_the_ledger_reads_open_until_its_verdicts_are_recorded():
    # The ledger closed the request, the node has not yet recorded the verdict: a requester
    # reading then must not conclude that its request closed unpaid.
    requester = Requester(_Node(_view("closed", [None])), Keypair.generate())
    outcome = requester.outcome("r1")
    assert outcome.status == "open" and not outcome.paid

    requester.node.view = _view("closed", [PAID])
    outcome = requester.outcome("r1")
    assert outcome.status == "closed" and outcome.paid and outcome.output == "bafy-output"


def test_a_closed_request_without_tasks_expired_and_an_open_one_stays_open():
    assert Requester(_Node(_view("closed", [])), Keypair.generate()).outcome("r").status == (
        "expired"
    )
    assert Requester(_Node(_view("open", [PAID])), Keypair.generate()).outcome("r").status == (
        "open"
    )
