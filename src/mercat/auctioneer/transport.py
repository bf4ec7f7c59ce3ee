"""How providers and bidder clients move frames: one protocol class, two implementations.

- `InProcessTransport` (here): endpoints of an `InProcessHub` in one asyncio event loop, for
  tests and simulations (thousands of rounds a minute, under a virtual clock if wanted);
- `ZmqTransport` (`mercat.auctioneer.zmq_transport`): ZeroMQ over TCP between processes.

Both carry the same signed frames (`mercat.auctioneer.messages`), so the in-process runs
exercise the encoding and the signatures too. Sending never blocks: a frame that cannot be
queued (an unknown or unreachable peer, a full queue) is dropped and logged, and the
protocol's timeouts turn the silence into ⊥.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger("mercat.auctioneer.transport")


@dataclass(frozen=True)
class Received:
    """Inbound frames and the route a reply takes back (opaque to the caller)."""

    frames: list[bytes]
    route: Any


class DropLog:
    """One warning per dropped message, up to `burst` of each kind in each `window` seconds;
    past that, the drops are counted and the next warning after the window says how many
    went unlogged. Whoever reaches the network decides how many messages are dropped, so
    without a bound the log (on disk, for a provider) would grow as fast as they send."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.window = window
        self.clock = clock
        # kind -> [window start, lines logged in it, drops not logged]; kinds are a fixed set
        self._state: dict[str, list[float]] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = self.clock()
        state = self._state.setdefault(kind, [now, 0, 0])
        if now - state[0] >= self.window:
            if state[2]:
                self.logger.warning(
                    "%d more messages dropped (%s) in %.0f s, not logged one by one",
                    state[2],
                    kind,
                    now - state[0],
                )
            state[:] = [now, 0, 0]
        if state[1] < self.burst:
            state[1] += 1
            self.logger.warning(message, *args)
        else:
            state[2] += 1


class Transport(ABC):
    """Non-blocking `send` to a named peer, `reply` along a route, awaitable `recv`."""

    name: ClassVar[str]

    @abstractmethod
    def send(self, peer: str, frames: Sequence[bytes]) -> None:
        """Queue frames for `peer`; drop (and log) if that is impossible right now."""

    @abstractmethod
    def reply(self, route: Any, frames: Sequence[bytes]) -> None:
        """Queue frames back along the route an inbound message came by."""

    @abstractmethod
    async def recv(self) -> Received:
        """The next inbound message (waits; callers bound the wait with a timeout)."""

    def recv_nowait(self) -> Received | None:
        """The next inbound message if one has arrived already, else None (never waits;
        by default nothing is ever ready, and `recv` is the only way in)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release sockets and queues."""

    async def aclose(self) -> None:
        """`close` from inside the event loop (lets background readers finish cleanly)."""
        self.close()


class InProcessHub:
    """The in-process 'network': one queue per endpoint name; `drop` cuts links."""

    def __init__(self, max_queue: int = 100_000) -> None:
        self.max_queue = max_queue
        self._queues: dict[str, asyncio.Queue[Received]] = {}
        self.delivered = 0
        self.dropped = 0

    def endpoint(self, name: str) -> InProcessTransport:
        if name in self._queues:
            raise ValueError(f"endpoint {name!r} exists already")
        self._queues[name] = asyncio.Queue(self.max_queue)
        return InProcessTransport(self, name)

    def deliver(self, source: str, target: str, frames: Sequence[bytes]) -> None:
        queue = self._queues.get(target)
        if queue is None:
            self.dropped += 1
            log.warning("in-process: no endpoint %r; frames from %r dropped", target, source)
            return
        try:
            queue.put_nowait(Received([bytes(f) for f in frames], source))
            self.delivered += 1
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("in-process: queue of %r is full; frames from %r dropped", target, source)

    def remove(self, name: str) -> None:
        self._queues.pop(name, None)

    def queue(self, name: str) -> asyncio.Queue[Received]:
        return self._queues[name]


class InProcessTransport(Transport):
    name = "in-process"

    def __init__(self, hub: InProcessHub, endpoint: str) -> None:
        self.hub = hub
        self.endpoint = endpoint

    def send(self, peer: str, frames: Sequence[bytes]) -> None:
        self.hub.deliver(self.endpoint, peer, frames)

    def reply(self, route: Any, frames: Sequence[bytes]) -> None:
        self.hub.deliver(self.endpoint, str(route), frames)

    async def recv(self) -> Received:
        return await self.hub.queue(self.endpoint).get()

    def recv_nowait(self) -> Received | None:
        try:
            return self.hub.queue(self.endpoint).get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self.hub.remove(self.endpoint)
