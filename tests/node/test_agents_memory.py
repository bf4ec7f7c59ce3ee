"""A provider agent and an oracle that run for many rounds remember only the tasks the node
still lists: their memory stays bounded, and no replica is run twice, no task reported
twice, while the node offers it."""

from __future__ import annotations

import threading
import time

from mercat.errors import AlreadyExistsError
from mercat.identity import Keypair
from mercat.node.agent import LISTING_LIMIT, ProviderAgent, ServerSpec
from mercat.node.claims import OutcomeClaim
from mercat.node.oracle_service import LISTING_LIMIT as ORACLE_LISTING_LIMIT
from mercat.node.oracle_service import OracleService
from mercat.node.sla import Timing
from mercat.node.views import TaskListing

from .test_agents_listings import LEDGER, NOW_MS, task_view

ROUNDS = 200
PER_ROUND = 3


def listed(round_: int) -> dict:
    """What the node lists open at round `round_`: the tasks of this round and the one
    before (each task is listed twice, as a task whose quorum comes in a round late)."""
    tasks = [task_view(f"t{i}", round_=r) for r in (round_ - 1, round_) if r >= 1
             for i in range(PER_ROUND)]  # fmt: skip
    return {"now_ms": NOW_MS, "tasks": tasks}


class _Market:
    """A node whose rounds move on at each look; it sets `stop` after the last round."""

    ledger_id = LEDGER

    def __init__(self, stop: threading.Event, finished=lambda round_: True):  # type: ignore[no-untyped-def]
        self.stop, self.finished = stop, finished
        self.round = 0
        self.reports: list = []

    def tasks(self, **filters):  # type: ignore[no-untyped-def]
        # The replicas started from the last listing are done before the round moves on:
        # the test sees the same sequence on every run.
        deadline = time.monotonic() + 20
        while not self.finished(self.round) and time.monotonic() < deadline:
            time.sleep(0.001)
        if self.round == ROUNDS:
            self.stop.set()
        else:
            self.round += 1
        return listed(self.round)

    def report(self, signed):  # type: ignore[no-untyped-def]
        self.reports.append(signed.report)
        return {"status": "pending", "received_ms": NOW_MS}


def _agent(node) -> tuple[ProviderAgent, list]:  # type: ignore[no-untyped-def]
    agent = ProviderAgent(node, Keypair.generate(), [ServerSpec("gpu-1", stake=1)],
                          poll_seconds=0.0)  # fmt: skip
    worked: list[tuple[int, str, str]] = []
    agent.work = lambda task, asset, offset_ms=0.0: worked.append(  # type: ignore[method-assign]
        (task["round"], task["task"], asset)
    )
    return agent, worked


def _rounds_of(market, make_agent):  # type: ignore[no-untyped-def]
    """An agent (`make_agent(node)`) run against `market(stop, finished)` until its rounds
    are over: the agent, the replicas it ran and its memory's size after each round."""
    stop = threading.Event()
    sizes: list[int] = []
    agent: ProviderAgent

    def finished(round_: int) -> bool:
        sizes.append(len(agent._started))
        return len(worked) == PER_ROUND * round_ and not agent._running

    node = market(stop, finished)
    agent, worked = make_agent(node)
    agent.run(stop)
    return node, agent, worked, sizes


def test_an_agent_remembers_only_the_replicas_of_tasks_still_listed():
    _, agent, worked, sizes = _rounds_of(_Market, _agent)
    # every replica ran exactly once, though each task was listed in two rounds
    assert len(worked) == len(set(worked)) == ROUNDS * PER_ROUND
    # two rounds' tasks at most, not one key per replica the agent ever ran
    assert max(sizes) <= 2 * PER_ROUND and len(agent._started) <= 2 * PER_ROUND


def test_an_agent_keeps_a_running_replica_and_what_a_partial_listing_may_hide():
    agent, worked = _agent(None)
    task = task_view("t1")
    assert agent.owed(task) == ["gpu-1"]
    empty = TaskListing(NOW_MS, [], 0)
    agent.forget(empty)  # settled while its replica is still queued or running
    assert agent.owed(task) == []  # not started a second time
    agent._guarded(task, "gpu-1", 0.0)  # the replica finishes
    full = TaskListing(NOW_MS, [], LISTING_LIMIT)  # as long as the limit: may hide it
    agent.forget(full)
    assert agent.owed(task) == []
    agent.forget(TaskListing(NOW_MS, [], 1))  # an entry was left out for its shape
    assert agent.owed(task) == []
    agent.forget(TaskListing(NOW_MS, [task], 1))  # still listed
    assert agent.owed(task) == []
    agent.forget(empty)  # no longer listed: forgotten
    assert not agent._started and worked == [(1, "t1", "gpu-1")]


def test_an_oracle_remembers_only_the_tasks_still_listed():
    node = _Market(threading.Event())
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0)  # type: ignore[arg-type]
    sizes = []
    for _ in range(ROUNDS):
        oracle.pass_once(Timing(grace_ms=200))
        sizes.append(len(oracle._done))
    reported = [(r.round, r.task) for r in node.reports]
    # each task reported once, though listed in two rounds without this oracle's report
    assert len(reported) == len(set(reported)) == ROUNDS * PER_ROUND
    assert max(sizes) <= 2 * PER_ROUND
    # a listing that may hide open tasks forgets nothing
    oracle.forget(TaskListing(NOW_MS, [], ORACLE_LISTING_LIMIT))
    assert len(oracle._done) == 2 * PER_ROUND
    oracle.forget(TaskListing(NOW_MS, [], 0))
    assert not oracle._done


class _Pages:
    """A node with many open tasks that pages its open listing as the node does: newest
    round first by default, oldest first on `order=oldest`, after a `ROUND/TASK` cursor."""

    ledger_id = LEDGER

    def __init__(self, rounds: int, per_round: int) -> None:
        self.open = {(r, f"t{i}"): task_view(f"t{i}", round_=r)
                     for r in range(1, rounds + 1) for i in range(per_round)}  # fmt: skip
        self.reports: list = []
        self.looks = 0

    def tasks(self, *, status, limit, order="newest", after=None):  # type: ignore[no-untyped-def]
        assert status == "open"
        self.looks += 1
        place = (lambda k: k) if order == "oldest" else (lambda k: (-k[0], k[1]))
        keys = sorted(self.open, key=place)
        if after is not None:
            round_, _, task = after.partition("/")
            keys = [k for k in keys if place(k) > place((int(round_), task))]
        return {"now_ms": NOW_MS, "tasks": [self.open[k] for k in keys[:limit]]}

    def report(self, signed):  # type: ignore[no-untyped-def]
        self.reports.append((signed.report.round, signed.report.task))
        return {"status": "pending", "received_ms": NOW_MS}


def test_an_oracle_reads_the_oldest_open_tasks_first_a_bounded_number_of_pages_a_pass(
    monkeypatch,
):
    """With more open tasks than one listing holds, the oldest (past their cutoff, the ones
    that most need a report) are judged first, each pass reads a bounded number of pages,
    and the next pass carries on where it stopped, so every task is reported, once."""
    from mercat.node import oracle_service

    monkeypatch.setattr(oracle_service, "LISTING_LIMIT", 3)
    monkeypatch.setattr(oracle_service, "PAGES_PER_PASS", 2, raising=False)
    node = _Pages(rounds=10, per_round=2)
    oldest_first = sorted(node.open)
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0)  # type: ignore[arg-type]
    timing = Timing(grace_ms=200)
    assert oracle.pass_once(timing) == 6
    assert node.reports == oldest_first[:6] and node.looks == 2
    for _ in range(3):
        oracle.pass_once(timing)
    assert node.reports == oldest_first  # every task, each once, oldest first
    assert node.looks == 2 + 2 + 2 + 1  # the last pass ended on a short page
    assert oracle.pass_once(timing) == 0  # from the start again: all reported already
    assert len(oracle._done) == 20
    node.open.clear()  # the quorum came in: every task settled
    oracle.pass_once(timing)  # after the two pages read last: what followed them forgotten
    assert set(oracle._done) == set(oldest_first[:6])
    oracle.pass_once(timing)  # from the start again: the rest
    assert not oracle._done


class _MarketWithABrokenTask(_Market):
    """A node that lists, besides each round's tasks, one entry of the wrong shape that
    stays listed (a node's bug, or a hostile node)."""

    def tasks(self, **filters):  # type: ignore[no-untyped-def]
        answer = super().tasks(**filters)
        return {**answer, "tasks": [{"round": 0, "task": "broken"}, *answer["tasks"]]}


def test_an_oracle_forgets_settled_tasks_though_a_malformed_entry_stays_listed():
    """A page with an entry left out for its shape forgot nothing: with fewer open tasks
    than one page holds, the oracle remembered every task it ever reported."""
    node = _MarketWithABrokenTask(threading.Event())
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0)  # type: ignore[arg-type]
    sizes = []
    for _ in range(ROUNDS):
        oracle.pass_once(Timing(grace_ms=200))
        sizes.append(len(oracle._done))
    reported = [(r.round, r.task) for r in node.reports]
    assert len(reported) == len(set(reported)) == ROUNDS * PER_ROUND
    assert max(sizes) <= 2 * PER_ROUND


class _PagesThatKeepReports(_Pages):
    """`_Pages` that lists each report it accepted in its task's `reported_by`, and
    refuses a second one from the same oracle, as the node does."""

    def report(self, signed):  # type: ignore[no-untyped-def]
        view = self.open[(signed.report.round, signed.report.task)]
        if signed.oracle in view["reported_by"]:
            raise AlreadyExistsError("reported already")
        view["reported_by"] = [*view["reported_by"], signed.oracle]
        return super().report(signed)


def test_an_oracle_forgets_a_task_the_node_lists_with_its_report():
    """The node keeps the report: the oracle need not remember the task until it settles."""
    node = _PagesThatKeepReports(rounds=2, per_round=3)
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0)  # type: ignore[arg-type]
    timing = Timing(grace_ms=200)
    assert oracle.pass_once(timing) == 6
    assert len(oracle._done) == 6  # the listing read before the reports does not show them
    assert oracle.pass_once(timing) == 0
    assert not oracle._done and len(node.reports) == 6


def test_an_oracles_memory_is_bounded_whatever_the_node_lists(monkeypatch):
    """A node that lists more open tasks than MAX_REMEMBERED: the oracle keeps the newest
    MAX_REMEMBERED keys; one forgotten early is passed over by its listed report."""
    from mercat.node import oracle_service

    monkeypatch.setattr(oracle_service, "MAX_REMEMBERED", 5, raising=False)
    node = _PagesThatKeepReports(rounds=10, per_round=2)
    oracle = OracleService(node, Keypair.generate(), sample_rate=0.0)  # type: ignore[arg-type]
    timing = Timing(grace_ms=200)
    assert oracle.pass_once(timing) == 20
    assert list(oracle._done) == sorted(node.open)[-5:]
    assert oracle.pass_once(timing) == 0  # each task reported once
    assert sorted(node.reports) == sorted(node.open)
    silent = OracleService(node, Keypair.generate(), behaviour="silent", sample_rate=0.0)  # type: ignore[arg-type]
    silent.pass_once(timing)
    silent.pass_once(timing)
    assert len(silent._done) == 5 and node.reports == sorted(node.open)


class _Claims:
    """A node that takes the agent's claims."""

    ledger_id = LEDGER

    def __init__(self) -> None:
        self.claims: list = []

    def claim(self, signed):  # type: ignore[no-untyped-def]
        self.claims.append((signed.claim.round, signed.claim.task, signed.claim.asset))
        return {"status": "accepted", "received_ms": NOW_MS}


class _MarketThatTakesClaims(_MarketWithABrokenTask, _Claims):
    """`_MarketWithABrokenTask` that takes the agent's claims."""

    def __init__(self, stop: threading.Event, finished) -> None:  # type: ignore[no-untyped-def]
        _MarketWithABrokenTask.__init__(self, stop, finished)
        _Claims.__init__(self)


def _claiming_agent(node) -> tuple[ProviderAgent, list]:  # type: ignore[no-untyped-def]
    """`_agent` whose replicas send their claim as `work` does; those of a task named
    "unsent*" fail before they send it."""
    agent, worked = _agent(node)

    def work(task, asset, offset_ms=0.0):  # type: ignore[no-untyped-def]
        worked.append((task["round"], task["task"], asset))
        if task["task"].startswith("unsent"):
            raise RuntimeError("the node could not be reached")
        claim = OutcomeClaim(LEDGER, task["round"], task["task"], asset, False, None, 0, "")
        return agent.send_claim(claim)

    agent.work = work  # type: ignore[method-assign]
    return agent, worked


def claim_view(asset: str = "gpu-1") -> dict:
    return {"asset": asset, "owner": "aa" * 32, "success": False, "output": None,
            "run_ms": 0, "error": "", "received_ms": NOW_MS}  # fmt: skip


def test_an_agent_forgets_settled_replicas_though_a_malformed_entry_stays_listed():
    """A page with an entry left out for its shape forgot nothing: with fewer open tasks
    than one page holds, the agent remembered every replica it ever ran."""
    node, agent, worked, sizes = _rounds_of(_MarketThatTakesClaims, _claiming_agent)
    assert len(worked) == len(set(worked)) == ROUNDS * PER_ROUND
    assert max(sizes) <= 2 * PER_ROUND and len(agent._started) <= 2 * PER_ROUND
    assert sorted(node.claims) == sorted(worked)


def test_on_a_page_with_an_entry_left_out_an_agent_keeps_a_replica_whose_claim_never_went():
    """The entry left out may be its task, still open: forgotten, it would be run again."""
    agent, worked = _claiming_agent(_Claims())
    sent, unsent = task_view("t1"), task_view("unsent1")
    for task in (sent, unsent):
        assert agent.owed(task) == ["gpu-1"]
        agent._guarded(task, "gpu-1", 0.0)
    agent.forget(TaskListing(NOW_MS, [], 1))
    assert list(agent._started) == [(1, "unsent1", "gpu-1")]
    assert agent.owed(unsent) == [] and len(worked) == 2
    agent.forget(TaskListing(NOW_MS, [], 0))  # a page that hides nothing: settled
    assert not agent._started


def test_an_agent_forgets_a_replica_the_node_lists_with_its_claim():
    """The node keeps the claim while the task is open: the agent need not remember the
    replica until the task settles. One still running, or whose claim a listing read
    before it arrived does not show, is kept."""
    node = _Claims()
    agent, worked = _claiming_agent(node)
    task = task_view("t1")
    assert agent.owed(task) == ["gpu-1"]
    claimed = task_view("t1", claims=[claim_view()])
    agent.forget(TaskListing(NOW_MS, [claimed], 1))  # its claim listed, still running
    assert agent.owed(task) == []
    agent._guarded(task, "gpu-1", 0.0)  # the claim sent
    agent.forget(TaskListing(NOW_MS, [task], 1))  # read before the claim arrived
    assert agent.owed(task) == [] and node.claims == [(1, "t1", "gpu-1")]
    agent.forget(TaskListing(NOW_MS, [claimed], 1))
    assert not agent._started
    assert agent.owed(claimed) == [] and worked == [(1, "t1", "gpu-1")]


def test_a_full_page_forgets_the_settled_replicas_of_the_stretch_it_covers(monkeypatch):
    """A page as long as the limit forgot nothing; it covers the newest tasks, up to its
    last (newest round first, each round's tasks by id): those older may be hidden."""
    from mercat.node import agent as agent_module

    monkeypatch.setattr(agent_module, "LISTING_LIMIT", 3)
    agent, worked = _agent(None)  # claims never sent: only the listing tells
    tasks = {(r, f"t{i}"): task_view(f"t{i}", round_=r) for r in (1, 2, 3) for i in range(3)}
    for task in tasks.values():
        assert agent.owed(task) == ["gpu-1"]
        agent._guarded(task, "gpu-1", 0.0)
    page = [tasks[3, "t0"], tasks[3, "t2"], tasks[2, "t1"]]
    agent.forget(TaskListing(NOW_MS, page, 3))
    # settled: (3, t1) and (2, t0); past the page: (2, t2) and round 1
    assert sorted(k[:2] for k in agent._started) == [
        (1, "t0"), (1, "t1"), (1, "t2"), (2, "t1"), (2, "t2"), (3, "t0"), (3, "t2"),
    ]  # fmt: skip
    assert all(agent.owed(tasks[k[:2]]) == [] for k in list(agent._started))
    assert len(worked) == 9


def test_an_agents_memory_is_bounded_whatever_the_node_lists(monkeypatch):
    """Past MAX_REMEMBERED, the replicas whose claim the node took are forgotten first,
    then the oldest; never one queued or running."""
    from mercat.node import agent as agent_module

    monkeypatch.setattr(agent_module, "MAX_REMEMBERED", 3, raising=False)
    agent, worked = _claiming_agent(_Claims())
    tasks = [task_view(name) for name in ("unsent0", "unsent1", "t2", "t3", "t4", "t5")]
    for task in tasks:
        assert agent.owed(task) == ["gpu-1"]
    listing = TaskListing(NOW_MS, tasks, len(tasks))  # read before any claim arrived
    agent.forget(listing)
    assert len(agent._started) == 6  # all running
    for task in tasks[:4]:
        agent._guarded(task, "gpu-1", 0.0)
    agent.forget(listing)
    assert list(agent._started) == [(1, "unsent1", "gpu-1"), (1, "t4", "gpu-1"),
                                    (1, "t5", "gpu-1")]  # fmt: skip
    assert agent.owed(tasks[1]) == [] and len(worked) == 4


def test_an_agents_queue_of_replicas_is_bounded_the_rest_left_for_a_later_poll():
    """A node listing more tasks than the agent can run (or endless fake ones) fills its
    queue up to `max_pending` replicas; the others are offered again by later polls."""
    stop, release = threading.Event(), threading.Event()
    listing = [task_view(f"t{i:03d}") for i in range(200)]
    node = _Market(stop)
    agent, worked = _agent(node)
    seen: list[int] = []

    def work(task, asset, offset_ms=0.0):  # type: ignore[no-untyped-def]
        release.wait(20)  # every worker busy until the second poll
        worked.append(task["task"])

    def drained() -> None:  # so that the test sees the same on every run
        deadline = time.monotonic() + 20
        while agent._running and time.monotonic() < deadline:
            time.sleep(0.001)

    def tasks(**filters):  # type: ignore[no-untyped-def]
        if len(seen) == 2:
            drained()  # what the second poll queued has run
        with agent._lock:
            seen.append(len(agent._running))
        if len(seen) == 2:
            release.set()
            drained()
        if len(seen) == 3:
            stop.set()
            return {"now_ms": NOW_MS, "tasks": []}  # every task settled
        return {"now_ms": NOW_MS, "tasks": listing}

    agent.work = work  # type: ignore[method-assign]
    node.tasks = tasks  # type: ignore[method-assign]
    agent.run(stop)
    assert seen[1] < len(listing), "the agent queued every task listed"
    pending = agent.max_pending
    assert seen == [0, pending, 0]  # the second poll found the queue full: nothing added
    # the second poll, once the queue had drained, queued the next ones
    assert sorted(worked) == [t["task"] for t in listing[: 2 * pending]]
    assert not agent._started
