"""`ZmqTransport`: the transport protocol over ZeroMQ on TCP (pyzmq, asyncio sockets).

Topology: a provider binds one ROUTER socket at its address; everything addressed to it
(peers' protocol messages, clients' bids) arrives there, and the ROUTER's routing id is the
route a reply (a Result to a client) goes back by. To send to peer q, a provider uses one
DEALER socket connected to q's address. A bidder client binds nothing: it connects one
DEALER per provider, sends its bids on them and receives the Results on them.

A provider never reads its DEALERs: its peers send to its ROUTER, and it answers only bid
batches, which come from clients, so nothing it needs ever comes back on a DEALER. Its
DEALERs are therefore plain (blocking-API) sockets that the event loop does not watch, sent
on with NOBLOCK: an asyncio socket costs a Future per send and wakes the loop on every
change of its (edge-triggered) descriptor, which at k = 3 (7 peers, two all-to-all phases
a round) was about a tenth of a provider's CPU. This is safe only because nothing reads
them: on a socket with a waiting reader a plain send can consume the descriptor's edge and
stall that reader until the next message arrives. A client reads on its DEALERs and keeps
asyncio sockets.

A provider's ROUTER is a plain socket too, read by the transport itself: the event loop
watches its descriptor, and each time it signals, `_drain_router` takes every message
waiting (up to DRAIN_BATCH, then it yields to the loop and comes back) straight into the
inbox, instead of a Future and a task switch per message. The descriptor is edge-triggered
and a send on the same socket (a Result to a client) can consume the edge, so every send on
the ROUTER schedules another drain: no message waits for the next one to be noticed.

ZeroMQ reconnects by itself, so a provider that restarts at the same address rejoins. A
connecting DEALER queues messages until the peer is up (at most `SNDHWM` of them); a send
that would block is dropped and logged instead (the protocol's timeouts deal with the
silence). `MAXMSGSIZE` makes ZeroMQ itself drop a peer that sends a frame over the limit,
before Python sees it; it bounds each frame, not their number (ZeroMQ has no such limit,
and holds a multipart message whole before it can be read): `decode` refuses any message
but three frames within the limit in all. `LINGER` 0: closing never waits for unsent
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import zmq
import zmq.asyncio

from mercat.auctioneer.transport import Received, Transport
from mercat.errors import AuctioneerConfigError

log = logging.getLogger("mercat.auctioneer.zmq")
SEND_HWM = 10_000
DRAIN_BATCH = 256  # messages taken per wake-up before the loop gets its turn again
ZERO_COPY_BYTES = 256 * 1024


class ZmqTransport(Transport):
    name = "zeromq"

    def __init__(
        self,
        peers: Mapping[str, str],
        *,
        bind: str | None = None,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        """`peers`: name -> tcp:// address to send to; `bind`: own address (providers)."""
        self.context = zmq.asyncio.Context()
        self.max_bytes = max_bytes
        self.router: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set when the ROUTER is read
        # A provider's DEALERs only send (module docstring); a client's also receive.
        self._send_only = bind is not None
        self.dealers: dict[str, zmq.Socket[bytes]] = {}
        self._inbox: asyncio.Queue[Received] | None = None
        self._readers: list[asyncio.Task[None]] = []
        self.dropped = 0
        try:
            if bind is not None:
                self.router = self._socket(zmq.ROUTER, plain=True)
                # A client that reconnects (a restarted `mercat bid`) takes its route over.
                self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
                self.router.bind(bind)
            for name, address in peers.items():
                dealer = self._socket(zmq.DEALER, plain=self._send_only)
                dealer.connect(address)
                self.dealers[name] = dealer
        except zmq.ZMQError as exc:
            self.close()
            raise AuctioneerConfigError(f"cannot open ZeroMQ sockets ({bind=}): {exc}") from exc

    def _socket(self, kind: int, *, plain: bool = False) -> Any:
        sock = self.context.socket(kind, socket_class=zmq.Socket if plain else None)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_bytes)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.RCVHWM, SEND_HWM)
        return sock

    def _send(self, sock: zmq.Socket[bytes], frames: Sequence[bytes], what: str) -> None:
        # Zero-copy sends cost about 0.3 ms a frame here (pyzmq's reference tracking); copying
        # is cheaper up to tens of kilobytes, so only large messages go without a copy.
        big = sum(len(f) for f in frames) > ZERO_COPY_BYTES
        error: BaseException | None = None
        if isinstance(sock, zmq.asyncio.Socket):
            future = sock.send_multipart(list(frames), flags=zmq.NOBLOCK, copy=not big)
            # With NOBLOCK, pyzmq's asyncio socket resolves the future at once.
            error = future.exception() if future.done() else None
        else:
            try:
                sock.send_multipart(list(frames), flags=zmq.NOBLOCK, copy=not big)
            except zmq.ZMQError as exc:  # zmq.Again: the queue is full
                error = exc
        if error is not None:
            self.dropped += 1
            log.warning("zeromq: message to %s dropped (%s)", what, error)

    def send(self, peer: str, frames: Sequence[bytes]) -> None:
        dealer = self.dealers.get(peer)
        if dealer is None:
            self.dropped += 1
            log.warning("zeromq: no connection to %r; message dropped", peer)
            return
        self._send(dealer, frames, repr(peer))

    def reply(self, route: Any, frames: Sequence[bytes]) -> None:
        kind, handle = route
        if kind == "router" and self.router is not None:
            self._send(self.router, [handle, *frames], "a client")
            if self._loop is not None:  # the send may have consumed the descriptor's edge
                self._loop.call_soon(self._drain_router)
        elif kind == "dealer" and handle in self.dealers:
            self._send(self.dealers[handle], frames, repr(handle))
        else:
            self.dropped += 1
            log.warning("zeromq: no route %r; reply dropped", route)

    async def recv(self) -> Received:
        # The ROUTER is drained on its descriptor's signal; a client's DEALERs each have a
        # reader task (awaiting each socket directly is much cheaper than a zmq Poller,
        # whose every poll() sets up new watchers). Both feed one queue.
        if self._inbox is None:
            self._inbox = asyncio.Queue()
            if self.router is not None:
                self._loop = asyncio.get_running_loop()
                self._loop.add_reader(self.router.getsockopt(zmq.FD), self._drain_router)
                self._drain_router()  # what arrived before anyone listened
            if not self._send_only:
                for name, dealer in self.dealers.items():
                    self._readers.append(asyncio.ensure_future(self._read(dealer, name)))
        return await self._inbox.get()

    def recv_nowait(self) -> Received | None:
        if self._inbox is None or self._inbox.empty():
            return None
        return self._inbox.get_nowait()

    def _drain_router(self) -> None:
        """Move the messages waiting at the ROUTER into the inbox (module docstring)."""
        router, inbox = self.router, self._inbox
        if router is None or router.closed or inbox is None:
            return
        for _ in range(DRAIN_BATCH):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:  # zmq.Again: nothing more for now
                return
            inbox.put_nowait(Received(parts[1:], ("router", parts[0])))
        assert self._loop is not None
        self._loop.call_soon(self._drain_router)  # more may wait: after the others' turn

    async def _read(self, sock: Any, name: str) -> None:
        assert self._inbox is not None
        while True:
            try:
                parts = await sock.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            self._inbox.put_nowait(Received(parts, ("dealer", name)))

    async def aclose(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        self.close()

    def close(self) -> None:
        if self._loop is not None and self.router is not None and not self.router.closed:
            with contextlib.suppress(RuntimeError, ValueError, OSError):  # loop closed already
                self._loop.remove_reader(self.router.getsockopt(zmq.FD))
        self._loop = None
        for reader in self._readers:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                reader.cancel()
        self._readers.clear()
        for sock in [self.router, *self.dealers.values()]:
            if sock is not None and not sock.closed:
                sock.close(linger=0)
        self.context.term()
