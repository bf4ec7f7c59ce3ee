"""An asyncio event loop whose clock jumps instead of waiting: simulations of timeouts in
microseconds.

When every task is waiting and the next thing due is a timer, a normal loop sleeps until
it fires. This loop advances its clock to the timer at once. Computation takes no virtual
time, messages in flight take none either (the in-process transport delivers at once), and
a deadline of five seconds costs nothing, so a simulated trial in which a coalition withholds
a message ends in ⊥ as fast as an honest one ends in (x, p).

It has no real I/O: use it with the in-process transport only. If every task waits and no
timer is pending, the simulation can never progress; the loop raises instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors


class _ClockSelector(selectors.BaseSelector):
    """A selector with no file descriptors to watch: `select(t)` advances the clock by t."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self._loop = loop
        self._map: dict[object, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        key = selectors.SelectorKey(fileobj, id(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self._map.pop(fileobj)

    def select(self, timeout=None):  # type: ignore[no-untyped-def]
        if timeout is None:
            raise RuntimeError(
                "virtual-clock simulation is stuck: every task waits and no timer is pending"
            )
        if timeout > 0:
            self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._map.clear()

    def get_map(self):  # type: ignore[no-untyped-def]
        return self._map


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """`loop.time()` is virtual; idle waits advance it instead of sleeping."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_ClockSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
