"""The parallel allocator's task graph: groups of at least k+1, a final task at everyone,
data transfer between groups; execution at each provider in process."""

import asyncio

import pytest

from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import Transfer
from mercat.auctioneer.round import RoundContext, RoundInbox
from mercat.auctioneer.task_graph import Task, TaskGraph, execute, groups
from mercat.auctioneer.virtual_clock import VirtualClockLoop
from mercat.errors import AuctioneerConfigError, RoundAbortedError

P = tuple(f"p{i}" for i in range(6))


def test_groups_split_evenly_with_at_least_k_plus_one():
    assert groups(P, 3, 1) == [("p0", "p1"), ("p2", "p3"), ("p4", "p5")]
    assert groups(P[:5], 2, 1) == [("p0", "p1", "p2"), ("p3", "p4")]
    assert groups(P, 1, 2) == [P]
    with pytest.raises(AuctioneerConfigError, match="at most 2 groups"):
        groups(P, 3, 2)
    with pytest.raises(AuctioneerConfigError, match=">= 1"):
        groups(P, 0, 1)


def num(value: int) -> bytes:
    return value.to_bytes(8, "little", signed=True)


def unnum(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


def summing_graph(k: int = 1) -> TaskGraph:
    """x = 10 at everyone; group g computes x * (g + 1); the final task adds them up."""
    teams = groups(P, 3, k)
    tasks = [Task("x", P, lambda _i: 10)]
    for g, team in enumerate(teams):
        tasks.append(Task(f"part/{g}", team, lambda i, g=g: i["x"] * (g + 1), ("x",), num, unnum))
    parts = tuple(f"part/{g}" for g in range(3))
    tasks.append(Task("final", P, lambda i: sum(i[p] for p in parts), ("x", *parts)))
    return TaskGraph(tuple(tasks), "final")


def test_check_accepts_the_graph_and_names_consumers():
    graph = summing_graph()
    graph.check(P, 1)
    assert graph.consumers("part/0") == ("p2", "p3", "p4", "p5")
    assert graph.consumers("x") == ()  # everyone computes x


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        (TaskGraph((Task("a", P[:1], lambda i: 0),), "a"), r"at least k\+1"),
        (
            TaskGraph((Task("a", P, lambda i: 0, ("b",)), Task("b", P, lambda i: 0)), "a"),
            "not before",
        ),
        (TaskGraph((Task("a", P[:3], lambda i: 0),), "a"), "every provider"),
        (
            TaskGraph((Task("a", P, lambda i: 0), Task("b", P, lambda i: 0)), "b"),
            "does not depend on",
        ),
        (TaskGraph((Task("a", P, lambda i: 0), Task("a", P, lambda i: 0)), "a"), "twice"),
        (TaskGraph((Task("a", ("p0", "zz"), lambda i: 0),), "a"), "unknown"),
    ],
)
def test_check_refuses_bad_graphs(graph, words):
    with pytest.raises(AuctioneerConfigError, match=words):
        graph.check(P, 1)


def run_everywhere(graph: TaskGraph, silent: str | None = None, corrupt: str | None = None):
    """Execute `graph` at every provider over shared inboxes; `silent` never sends,
    `corrupt` sends wrong values."""
    params = ProtocolParams(P, 1)

    async def main():
        inboxes = {p: RoundInbox() for p in P}
        contexts = {}
        for p in P:

            def deliver(to, frames, me=p):
                message = frames  # deliver the Message object itself (no encoding here)
                if me == silent:
                    return
                if me == corrupt and isinstance(message, Transfer):
                    message = Transfer(message.round, message.task, num(-1))
                inboxes[to].put(me, message)

            contexts[p] = RoundContext(
                me=p,
                round_id=0,
                params=params,
                inbox=inboxes[p],
                send_frames=lambda to, message: message,
                deliver=deliver,
            )
        results = await asyncio.gather(
            *(execute(graph, p, contexts[p], 5.0) for p in P), return_exceptions=True
        )
        return dict(zip(P, results, strict=True))

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())


def test_every_provider_gets_the_result_of_the_whole_algorithm():
    assert run_everywhere(summing_graph()) == dict.fromkeys(P, 10 * (1 + 2 + 3))


def test_a_silent_or_lying_group_member_gives_bottom_outside_its_group():
    results = run_everywhere(summing_graph(), silent="p2")
    assert results["p2"] == 60 and results["p3"] == 60  # group 1 needs no transfer of its own
    for p in ("p0", "p1", "p4", "p5"):  # they wait for p2's part: timeout
        assert isinstance(results[p], RoundAbortedError) and "part/1" in str(results[p])
    results = run_everywhere(summing_graph(), corrupt="p4")
    for p in ("p0", "p1", "p2", "p3"):
        assert isinstance(results[p], RoundAbortedError) and "another value" in str(results[p])
    assert results["p5"] == 60 and results["p4"] == 60
