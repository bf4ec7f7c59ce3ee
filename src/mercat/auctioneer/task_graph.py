"""The parallel allocator's task graph (seed 003 §4.2, Fig. 2-3).

An algorithm A is cut into tasks; edges are data dependencies. Each task runs at a group of
at least k+1 providers, so every group holds an honest provider; a task whose result another
group needs is handed over by data transfer (all members of the producing group send it,
the receiver accepts it only if all sent the same bytes). One final task, which every
provider runs, depends on every other task and produces the output (x, p).

`execute` runs the graph at one provider: tasks in topological order; for a task it runs, it
first obtains the dependencies it did not compute (data transfer), computes, and sends the
result to the providers outside the group that need it. Providers of different groups thus
compute their tasks at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mercat.auctioneer import data_transfer
from mercat.errors import AuctioneerConfigError


def _identity_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("a task without a codec must return bytes")
    return value


@dataclass(frozen=True)
class Task:
    """One task: `run(inputs)` with inputs = {dependency name: its result}."""

    name: str
    group: tuple[str, ...]
    run: Callable[[Mapping[str, Any]], Any]
    deps: tuple[str, ...] = ()
    encode: Callable[[Any], bytes] = _identity_bytes
    decode: Callable[[bytes], Any] = field(default=lambda data: data)
    heavy: bool = True  # worth a worker thread (a provider keeps receiving meanwhile)


@dataclass(frozen=True)
class TaskGraph:
    tasks: tuple[Task, ...]  # in a topological order
    final: str
    key: bytes = b""  # identifies the graph's inputs (simulations share results by it)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise AuctioneerConfigError(f"no task {name!r} in the graph")

    def check(self, providers: Sequence[str], k: int) -> None:
        """Raise AuctioneerConfigError unless the graph is a valid parallel allocator."""
        seen: set[str] = set()
        everyone = set(providers)
        for t in self.tasks:
            if t.name in seen:
                raise AuctioneerConfigError(f"task {t.name!r} appears twice")
            for d in t.deps:
                if d not in seen:
                    raise AuctioneerConfigError(f"task {t.name!r} depends on {d!r}, not before")
            members = set(t.group)
            if not members <= everyone or len(members) != len(t.group):
                raise AuctioneerConfigError(f"task {t.name!r} has an unknown or repeated member")
            if len(members) < min(k + 1, len(everyone)):
                raise AuctioneerConfigError(
                    f"task {t.name!r} runs at {len(members)} providers; at least k+1 = "
                    f"{k + 1} are needed so that a coalition of k cannot answer alone"
                )
            seen.add(t.name)
        final = self.task(self.final)
        if set(final.group) != everyone:
            raise AuctioneerConfigError("the final task must run at every provider")
        reached, stack = set(), [self.final]
        while stack:
            name = stack.pop()
            if name not in reached:
                reached.add(name)
                stack.extend(self.task(name).deps)
        if reached != seen:
            raise AuctioneerConfigError(
                f"the final task does not depend on {sorted(seen - reached)}"
            )

    def consumers(self, name: str) -> tuple[str, ...]:
        """Providers outside `name`'s group that run a task depending on it."""
        group = set(self.task(name).group)
        out: list[str] = []
        for t in self.tasks:
            if name in t.deps:
                out.extend(p for p in t.group if p not in group and p not in out)
        return tuple(out)


def groups(providers: Sequence[str], count: int, k: int) -> list[tuple[str, ...]]:
    """Split the providers (in order) into `count` groups of nearly equal size, each of at
    least k+1 providers."""
    m = len(providers)
    if count < 1:
        raise AuctioneerConfigError(f"the number of groups must be >= 1, got {count}")
    if count * (k + 1) > m:
        raise AuctioneerConfigError(
            f"{count} groups of at least k+1 = {k + 1} providers need {count * (k + 1)} "
            f"providers, there are {m} (at most {m // (k + 1)} groups)"
        )
    size, extra = divmod(m, count)
    out, start = [], 0
    for g in range(count):
        end = start + size + (1 if g < extra else 0)
        out.append(tuple(providers[start:end]))
        start = end
    return out


class TaskNet(Protocol):
    """What `execute` needs from the round it runs in."""

    async def compute(self, fn: Callable[..., Any], *args: Any, heavy: bool = True) -> Any: ...

    def task_result(self, task: str, value: Any) -> Any: ...

    async def transfer(self, task: str, value: bytes, to: Sequence[str]) -> None: ...

    async def gather_transfers(
        self, task: str, senders: Sequence[str], deadline: float
    ) -> dict[str, bytes]: ...


async def execute(
    graph: TaskGraph,
    me: str,
    net: TaskNet,
    deadline: float,
    cache: dict[tuple[bytes, str], Any] | None = None,
) -> Any:
    """Run `graph` at provider `me`; the final task's result, or RoundAbortedError (⊥)."""
    results: dict[str, Any] = {}
    for task in graph.tasks:
        if me not in task.group:
            continue
        for dep in task.deps:
            if dep not in results:
                producer = graph.task(dep)
                values = await net.gather_transfers(dep, producer.group, deadline)
                results[dep] = producer.decode(data_transfer.receive(dep, values, producer.group))
        inputs = {dep: results[dep] for dep in task.deps}
        key = (graph.key, task.name)
        if cache is not None and graph.key and key in cache:
            value = cache[key]
        else:
            value = await net.compute(task.run, inputs, heavy=task.heavy)
            if cache is not None and graph.key:
                cache[key] = value
        value = net.task_result(task.name, value)
        results[task.name] = value
        consumers = graph.consumers(task.name)
        if consumers:
            await net.transfer(task.name, task.encode(value), consumers)
    return results[graph.final]
