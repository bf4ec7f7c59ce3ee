"""A node that answers valid JSON of the wrong shape (a field missing, a string for a number,
a list for an object) does not end a provider agent's, an oracle's or a requester's loop:
each leaves the malformed entry out with one warning and handles the well-formed ones."""

from __future__ import annotations

import copy
import logging
import threading
import time

from mercat.identity import Keypair
from mercat.node.agent import ProviderAgent, ServerSpec
from mercat.node.oracle_service import OracleService
from mercat.node.requester import Requester, RequesterLoad

LEDGER = "ab" * 16
OWNER = "aa" * 32
REQUESTER = "cd" * 32
NOW_MS = 10**12  # long past every task's cutoff below


def task_view(task: str = "t1", round_: int = 1, **fields):  # type: ignore[no-untyped-def]
    """A task view as the node answers it (`market_schemas.TaskView`)."""
    view = {
        "round": round_, "task": task, "request": "job1", "requester": REQUESTER,
        "status": "open", "workload": "train-logreg:steps=5", "inputs": ["bafkreiin"],
        "deadline_ms": 1_000, "charge": 300, "opened_ms": 0,
        "assets": [{"asset": "gpu-1", "owner": OWNER, "kind": "server", "payout": 100}],
        "claims": [], "reported_by": [], "sealed": [], "granted": [], "verdict": None,
        "note": "",
    }  # fmt: skip
    view.update(fields)
    return view


def without(view, name):  # type: ignore[no-untyped-def]
    return {k: v for k, v in view.items() if k != name}


def malformed_tasks() -> list:
    """One entry for each way a task view can be of the wrong shape."""
    asset = {"asset": "gpu-1", "owner": OWNER, "kind": "server", "payout": 100}
    return [
        without(task_view("missing-claims"), "claims"),
        without(task_view("missing-reported"), "reported_by"),
        task_view("round-as-text", round_="1"),  # type: ignore[arg-type]
        task_view("assets-an-object", assets={"gpu-1": asset}),
        task_view("asset-a-list", assets=[["gpu-1", OWNER, "server", 100]]),
        task_view("claim-a-list", claims=[["gpu-1", True]]),
        ["t9", 1],  # a list where a task (an object) is expected
        None,
    ]


def _in_thread(target, *args):  # type: ignore[no-untyped-def]
    """Run `target` in a thread; (thread, what it raised)."""
    raised: list[BaseException] = []

    def body() -> None:
        try:
            target(*args)
        except BaseException as exc:  # the test reports it
            raised.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, raised


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


INFO = {"ledger_id": LEDGER, "round": 1, "unit": 100, "quorum": 2, "oracles": [],
        "now_ms": NOW_MS, "grace_ms": 200, "no_deadline_ms": 5_000, "loop": None}  # fmt: skip


def _in_turn(answers: list, calls: int):  # type: ignore[no-untyped-def]
    """The answer to the `calls`-th call: each of `answers` in turn, then the last again."""
    return copy.deepcopy(answers[min(calls, len(answers)) - 1])


class _Listings:
    """A node answering `tasks()` and `market_info()` with each of its answers in turn."""

    ledger_id = LEDGER

    def __init__(self, answers, infos=(INFO,)):  # type: ignore[no-untyped-def]
        self.answers, self.infos = answers, list(infos)
        self.calls = self.info_calls = 0
        self.reports: list = []

    def tasks(self, **filters):  # type: ignore[no-untyped-def]
        self.calls += 1
        return _in_turn(self.answers, self.calls)

    def market_info(self):  # type: ignore[no-untyped-def]
        self.info_calls += 1
        return _in_turn(self.infos, self.info_calls)

    def report(self, signed):  # type: ignore[no-untyped-def]
        self.reports.append(signed.report)
        return {"status": "pending", "received_ms": NOW_MS}


def test_an_agent_runs_the_well_formed_tasks_of_a_listing_and_leaves_out_the_others(caplog):
    listing = {"now_ms": NOW_MS,
               "tasks": [task_view("t1"), *malformed_tasks(), task_view("t7")]}  # fmt: skip
    node = _Listings([
        [listing],  # a list where the listing (an object) is expected
        {"now_ms": NOW_MS, "tasks": {"t1": task_view("t1")}},  # an object for the list
        listing,
    ])  # fmt: skip
    agent = ProviderAgent(node, Keypair.generate(), [ServerSpec("gpu-1", stake=1)],  # type: ignore[arg-type]
                          poll_seconds=0.01)  # fmt: skip
    worked: list[tuple[int, str, str]] = []
    agent.work = lambda task, asset, offset_ms=0.0: worked.append(  # type: ignore[method-assign]
        (task["round"], task["task"], asset)
    )
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="mercat.agent"):
        thread, raised = _in_thread(agent.run, stop)
        _wait(lambda: (node.calls >= 10 and len(worked) >= 2) or bool(raised))
        stop.set()
        thread.join(20)
    assert raised == [] and not thread.is_alive()
    assert node.calls >= 10  # the loop went on polling after the malformed answers
    assert sorted(worked) == [(1, "t1", "gpu-1"), (1, "t7", "gpu-1")]  # each once
    assert len(agent.stats.errors) == 2  # the two answers of the wrong shape, noted
    left_out = [r.getMessage() for r in caplog.records
                if "entries are not of the expected shape" in r.getMessage()]  # fmt: skip
    # one warning, not one per poll, naming how many entries were left out
    assert len(left_out) == 1 and "8 of 10 entries" in left_out[0]


def test_an_oracle_reports_on_the_well_formed_tasks_of_a_listing_and_leaves_out_the_others():
    listing = {"now_ms": NOW_MS,
               "tasks": [task_view("t1"), *malformed_tasks(), task_view("t7")]}  # fmt: skip
    node = _Listings([
        {"now_ms": "later", "tasks": []},  # a string for the node's clock
        {"now_ms": NOW_MS},  # no tasks at all
        listing,
    ], infos=[[INFO], INFO])  # the market info is first answered as a list  # fmt: skip
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0, poll_seconds=0.01)  # type: ignore[arg-type]
    stop = threading.Event()
    thread, raised = _in_thread(oracle.run, stop)
    _wait(lambda: node.calls >= 6 or bool(raised))
    stop.set()
    thread.join(20)
    assert raised == [] and not thread.is_alive()
    # Both well-formed tasks are past their cutoff without a claim: reported failed, once.
    assert sorted((r.task, r.success) for r in node.reports) == [("t1", False), ("t7", False)]
    assert len(oracle.stats.errors) == 3  # the info and the two listings of the wrong shape


PAID = {"success": True, "sla_met": True, "paid": True, "latency_ms": 10, "output": "bafyout"}
FAILED = {"success": False, "sla_met": False, "paid": False, "latency_ms": 10, "output": None}


def request_view(name: str, status: str, tasks: list, **fields):  # type: ignore[no-untyped-def]
    view = {"request": name, "owner": REQUESTER, "status": status, "round": 1, "served": 1,
            "open_tasks": 0, "escrow": 0, "terms": {}, "tasks": tasks}  # fmt: skip
    view.update(fields)
    return view


class _Views:
    ledger_id = LEDGER

    def __init__(self, views):  # type: ignore[no-untyped-def]
        self.views = views
        self.looked: list[str] = []

    def request_view(self, request):  # type: ignore[no-untyped-def]
        self.looked.append(request)
        return copy.deepcopy(self.views[request])

    def ledger_info(self):  # type: ignore[no-untyped-def]
        return {"unit": 100}

    def round(self):  # type: ignore[no-untyped-def]
        return 1

    def submit(self, key, op):  # type: ignore[no-untyped-def]
        return {"result": {"refunded": 0}}


def test_a_request_with_a_malformed_task_reads_open_with_its_well_formed_tasks():
    settled = task_view("t1", status="settled", verdict=PAID)
    for bad in malformed_tasks():
        node = _Views({"r": request_view("r", "closed", [settled, bad])})
        outcome = Requester(node, Keypair.generate()).outcome("r")  # type: ignore[arg-type]
        # the task left out may be one not settled yet: the request is not decided
        assert outcome.status == "open" and [t["task"] for t in outcome.tasks] == ["t1"]
    node = _Views({"r": request_view("r", "closed", [settled])})
    outcome = Requester(node, Keypair.generate()).outcome("r")  # type: ignore[arg-type]
    assert outcome.status == "closed" and outcome.paid and outcome.output == "bafyout"


def test_a_requester_load_follows_its_other_requests_past_a_malformed_view():
    failed = task_view("t1", status="settled", verdict=FAILED)
    node = _Views({
        "r-list": [request_view("r-list", "closed", [failed])],  # a list for the view
        "r-tasks": request_view("r-tasks", "closed", {"t1": failed}),  # an object for the list
        "r-sealed": request_view("r-sealed", "closed", [failed], terms={"sealed": "inputs"}),
        "r-entry": request_view("r-entry", "closed", [failed, ["t2"]]),
        "r-good": request_view("r-good", "closed", [failed]),
    })  # fmt: skip
    load = RequesterLoad(Requester(node, Keypair.generate()), per_round=0, poll_seconds=0.01)  # type: ignore[arg-type]
    load.pending = {name: "train-logreg" for name in node.views}
    stop = threading.Event()
    thread, raised = _in_thread(load.run, stop)
    _wait(lambda: load.stats.closed >= 1 or bool(raised))
    stop.set()
    thread.join(20)
    assert raised == [] and not thread.is_alive()
    assert load.stats.closed == 1 and load.stats.failed == 1  # r-good, followed and counted
    assert "r-good" not in load.pending and load.stats.withdrawn == 4  # the others, at stop
    assert load.stats.errors and all("MalformedMessageError" in x for x in load.stats.errors)
