"""A provider: receives bids and peer messages, runs rounds, answers the bidders.

`ProviderNode.serve()` is one asyncio loop over the transport: every inbound message is
decoded and authenticated (a malformed, unknown, oversized or badly signed one is dropped
and logged), then filed with its round. Rounds are independent: each runs as its own task
(`mercat.auctioneer.round.run_protocol`) with its own deadlines, so a round stuck on a
silent peer never delays the next one, and a restarted provider simply joins the next round.

A round opens at the first message that names it (a bid, or a peer's commitment) and takes
bids for `bid_window` seconds, or until every client listed in `sealing_clients` has sent
its final batch. A bid after that is late, hence ⊥ at this provider. Two different bids for
one bidder at one provider make that bidder's bid invalid (⊥) there; the bid agreement then
makes every provider treat the bidder alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import (
    Abort,
    BidBatch,
    Message,
    Result,
    Signed,
    Verifier,
    decode,
    encode,
)
from mercat.auctioneer.round import (
    HONEST,
    Behavior,
    RoundContext,
    RoundInbox,
    RoundResult,
    run_protocol,
)
from mercat.auctioneer.transport import Received, Transport
from mercat.errors import ProtocolError, RoundAbortedError
from mercat.identity import Keypair

if TYPE_CHECKING:  # SQLAlchemy is imported only by providers that keep a log
    from mercat.auctioneer.result_log import ResultLog

log = logging.getLogger("mercat.auctioneer.node")
FINISHED_MEMORY = 1024  # finished rounds remembered, so their late messages are dropped
MAX_CLIENTS_PER_ROUND = 1024


@dataclass
class _Round:
    id: int
    inbox: RoundInbox
    opened: float
    batches: list[BidBatch] = field(default_factory=list)
    clients: dict[Any, None] = field(default_factory=dict)  # reply routes, in order
    finals: set[str] = field(default_factory=set)
    sealed: asyncio.Event = field(default_factory=asyncio.Event)
    bidding: bool = True
    task: asyncio.Task[None] | None = None
    bid_count: int = 0


class ProviderNode:
    """One executing provider."""

    def __init__(
        self,
        me: str,
        params: ProtocolParams,
        key: Keypair,
        peer_keys: Mapping[str, str],
        transport: Transport,
        *,
        sealing_clients: Iterable[str] = (),
        bidder_keys: Mapping[str, str] | None = None,
        behavior: Behavior = HONEST,
        rng: np.random.Generator | None = None,
        offload_compute: bool = False,
        task_cache: dict[tuple[bytes, str], Any] | None = None,
        on_result: Callable[[RoundResult], None] | None = None,
        result_log: ResultLog | None = None,
    ) -> None:
        if me not in params.providers:
            raise ValueError(f"{me!r} is not one of the providers {params.providers}")
        self.me = me
        self.params = params
        self.key = key
        self.peer_keys = dict(peer_keys)
        self.transport = transport
        self.sealing = frozenset(sealing_clients)
        # Bidder label -> the client key allowed to bid under it. Without a registry any
        # client may bid under any label (and a second, different bid spoils it to ⊥).
        self.bidder_keys = None if bidder_keys is None else dict(bidder_keys)
        self.behavior = behavior
        self.rng = rng
        self.offload = offload_compute
        self.cache = task_cache
        self.on_result = on_result
        # Finished rounds survive a restart here: see mercat.auctioneer.result_log.
        self.result_log = result_log
        self.verifier = Verifier()
        self.rounds: dict[int, _Round] = {}
        self.finished: OrderedDict[int, RoundResult] = OrderedDict()
        self.dropped: dict[str, int] = {}
        self._stopping = asyncio.Event()

    # --- the receive loop ---------------------------------------------------------------

    async def serve(self) -> None:
        """Receive and dispatch until `stop()`; then cancel the rounds still running."""
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                receive = asyncio.ensure_future(self.transport.recv())
                done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:
                    receive.cancel()
                    break
                self.handle(receive.result())
        finally:
            stop.cancel()
            for rnd in list(self.rounds.values()):
                if rnd.task is not None:
                    rnd.task.cancel()
            tasks = [r.task for r in self.rounds.values() if r.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    def handle(self, received: Received) -> None:
        """Decode, authenticate and file one inbound message (drop and log a bad one)."""
        try:
            signed = decode(
                received.frames,
                self._key_of,
                max_bytes=self.params.max_message_bytes,
                verifier=self.verifier,
            )
        except ProtocolError as exc:  # malformed, oversized, unknown sender, bad signature
            self._drop(type(exc).__name__, f"from route {received.route!r}: {exc}")
            return
        except Exception as exc:
            self._drop("error", f"decoding failed: {exc!r}")
            return
        self.dispatch(signed, received.route)

    def _key_of(self, sender: str, cls: type[Message]) -> str | None:
        if cls.from_client:
            return sender  # a client's id is its public key
        if cls is Result or sender == self.me:
            return None  # providers do not send Results to providers; nor to themselves
        return self.peer_keys.get(sender)

    def _drop(self, why: str, detail: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        log.warning("%s dropped a message (%s): %s", self.me, why, detail)

    def dispatch(self, signed: Signed, route: Any) -> None:
        message = signed.message
        r = message.round
        if r not in self.finished and r not in self.rounds:
            self._recall(r)
        if r in self.finished:
            if isinstance(message, BidBatch):
                self._drop("late-bids", f"round {r} is over; {signed.sender[:12]}… gets its result")
                self.transport.reply(route, self._result_frames(self.finished[r]))
            return
        rnd = self.rounds.get(r)
        if rnd is None:
            if len(self.rounds) >= self.params.max_open_rounds and not self._evict_idle():
                self._drop("too-many-rounds", f"round {r} from {signed.sender}")
                return
            rnd = self._open(r)
        if isinstance(message, BidBatch):
            self._add_bids(rnd, signed.sender, message, route)
        else:
            rnd.inbox.put(signed.sender, message)

    # --- rounds -------------------------------------------------------------------------

    def _open(self, r: int) -> _Round:
        loop = asyncio.get_running_loop()
        rnd = _Round(r, RoundInbox(), loop.time())
        self.rounds[r] = rnd
        rnd.task = loop.create_task(self._run(rnd), name=f"{self.me}-round-{r}")
        return rnd

    def _evict_idle(self) -> bool:
        """Make room by ending the oldest round that no client has bid in (a peer opened
        it; a deviating peer could otherwise fill the table with rounds that never run).
        It ends in ⊥ like any round that times out."""
        idle = [rnd for rnd in self.rounds.values() if not rnd.clients]
        if not idle:
            return False
        victim = min(idle, key=lambda rnd: rnd.opened)
        reason = "evicted: a round without bids, to make room for another"
        victim.inbox.fail(reason)
        victim.sealed.set()
        self.rounds.pop(victim.id, None)
        self.finished[victim.id] = RoundResult(victim.id, None, reason)  # late messages: drop
        self._drop("evicted-round", f"round {victim.id} (no bids) made room")
        return True

    def _add_bids(self, rnd: _Round, client: str, batch: BidBatch, route: Any) -> None:
        if len(rnd.clients) < MAX_CLIENTS_PER_ROUND:
            rnd.clients[route] = None
        if not rnd.bidding:
            self._drop("late-bids", f"round {rnd.id}: {len(batch.bids)} bids from {client[:12]}…")
            return
        if self.bidder_keys is not None:
            batch = self._registered_only(rnd, client, batch)
        if rnd.bid_count + len(batch.bids) > self.params.max_bids:
            self._drop("too-many-bids", f"round {rnd.id}: over {self.params.max_bids} bids")
            return
        rnd.batches.append(batch)
        rnd.bid_count += len(batch.bids)
        if batch.final and client in self.sealing:
            rnd.finals.add(client)
            if rnd.finals >= self.sealing:
                rnd.bidding = False  # closed now: any later batch is late
                rnd.sealed.set()

    def _registered_only(self, rnd: _Round, client: str, batch: BidBatch) -> BidBatch:
        """The batch without bids under labels this client may not bid for: a client can
        neither bid for an unregistered label nor spoil another bidder's label."""
        assert self.bidder_keys is not None
        keys = self.bidder_keys
        allowed = np.fromiter((keys.get(b) == client for b in batch.bids.ids), bool)
        if allowed.all():
            return batch
        refused = int((~allowed).sum())
        self._drop(
            "unregistered-bids",
            f"round {rnd.id}: {refused} bids from {client[:12]}… under labels it does not hold",
        )
        return replace(batch, bids=batch.bids.take(allowed))

    async def _run(self, rnd: _Round) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.params.bid_window):
                await rnd.sealed.wait()
        except TimeoutError:
            pass
        rnd.bidding = False
        received = merge_batches(rnd.batches)
        ctx = RoundContext(
            me=self.me,
            round_id=rnd.id,
            params=self.params,
            inbox=rnd.inbox,
            send_frames=self._frames,
            deliver=self.transport.send,
            behavior=self.behavior,
            rng=self.rng,
            offload=self.offload,
            cache=self.cache,
            opened=rnd.opened,
        )
        started = loop.time()
        try:
            result = await run_protocol(ctx, received)
        except RoundAbortedError as exc:
            result = RoundResult(rnd.id, None, exc.reason, seconds=loop.time() - started)
            rnd.inbox.failure = rnd.inbox.failure or exc.reason
            ctx.send(Abort(rnd.id, exc.reason), ctx.others)
            log.info("%s: round %d ended in ⊥: %s", self.me, rnd.id, exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the round in ⊥, not kill the provider
            log.exception("%s: round %d failed", self.me, rnd.id)
            reason = f"internal error: {exc!r}"
            result = RoundResult(rnd.id, None, reason, seconds=loop.time() - started)
            ctx.send(Abort(rnd.id, reason[:200]), ctx.others)
        self._finish(rnd, result)

    def _finish(self, rnd: _Round, result: RoundResult) -> None:
        if self.rounds.get(rnd.id) is rnd:
            del self.rounds[rnd.id]
        self._remember(result)
        payload = result.outcome.encode() if result.outcome is not None else b""
        if self.result_log is not None:  # before the replies: what a client saw is on disk
            try:
                self.result_log.record(self.me, result, payload)
            except Exception:  # a full disk must not stop the auction; say so loudly
                log.exception(
                    "%s: round %d could not be written to the result log", self.me, rnd.id
                )
        if rnd.clients:  # one signed Result for every client of the round
            frames = self._result_frames(result, payload)
            for route in rnd.clients:
                self.transport.reply(route, frames)
        if self.on_result is not None:
            self.on_result(result)

    def _remember(self, result: RoundResult) -> None:
        self.finished[result.round] = result
        while len(self.finished) > FINISHED_MEMORY:
            self.finished.popitem(last=False)

    def _recall(self, r: int) -> None:
        """A round this provider finished before it last started (or too long ago to be in
        memory) is finished, not new: take it from the result log if it is there."""
        if self.result_log is None:
            return
        try:
            logged = self.result_log.get(self.me, r)
        except Exception:
            log.exception("%s: the result log could not be read for round %d", self.me, r)
            return
        if logged is not None:
            self._remember(logged.result())

    def _result_frames(self, result: RoundResult, payload: bytes | None = None) -> list[bytes]:
        """The signed Result of a finished round (`payload`: its encoded outcome, if at hand)."""
        if payload is None:
            payload = result.outcome.encode() if result.outcome is not None else b""
        phases = tuple((name, round(seconds * 1e6)) for name, seconds in result.phases)
        message = Result(result.round, result.ok, result.reason, payload, phases)
        return self._frames("client", message)

    def _frames(self, to: str, message: Message) -> list[bytes]:
        return encode(message, self.me, self.key)


def merge_batches(batches: list[BidBatch]) -> BidVector:
    """One provider's received vector b^j: every valid bid it got in time; a bidder with two
    different bids gets ⊥."""
    if not batches:
        return BidVector.empty()
    if len(batches) == 1:
        return batches[0].bids.valid()
    seen: dict[str, tuple[int, float, float]] = {}
    conflicted: set[str] = set()
    for batch in batches:
        v = batch.bids
        for bidder, s, p, q in zip(
            v.ids, v.side.tolist(), v.price.tolist(), v.quantity.tolist(), strict=True
        ):
            entry = (s, p, q)
            held = seen.get(bidder)
            if held is None:
                seen[bidder] = entry
            elif held != entry and not (_same_float(held, entry)):
                conflicted.add(bidder)
    ids = sorted(b for b in seen if b not in conflicted)
    return BidVector(
        ids,
        np.array([seen[i][0] for i in ids], dtype=np.uint8),
        np.array([seen[i][1] for i in ids], dtype=float),
        np.array([seen[i][2] for i in ids], dtype=float),
    ).valid()


def _same_float(a: tuple[int, float, float], b: tuple[int, float, float]) -> bool:
    """Bit-identical entries (NaN == NaN here: the same invalid bid twice is no conflict)."""
    return np.array(a[1:], "<f8").tobytes() == np.array(b[1:], "<f8").tobytes() and a[0] == b[0]
