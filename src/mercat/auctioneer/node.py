"""A provider: receives bids and peer messages, runs rounds, answers the bidders.

`ProviderNode.serve()` is one asyncio loop over the transport: every inbound message is
decoded and authenticated (a malformed, unknown, oversized or badly signed one is dropped
and logged), then filed with its round. Rounds are independent: each runs as its own task
(`mercat.auctioneer.round.run_protocol`) with its own deadlines, so a round stuck on a
silent peer never delays the next one, and a restarted provider simply joins the next round.

When a round takes bids is `mercat.auctioneer.opening`'s rule, never the first message
that names it: by the schedule (round r's window on the clock), or by the sealing clients
(their first batch opens it, their final batches close it; k+1 providers' commitments
open it too). A batch this provider does not take (the round is not open here, or bidding
closed before it arrived) is answered at once with a signed `Missed`, so its client is
told that it missed the round instead of "ok". Two different bids for one bidder at one
provider make that bidder's bid invalid (⊥) there; the bid agreement then makes every
provider treat the bidder alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams, check_sealing
from mercat.auctioneer.messages import (
    Abort,
    BidBatch,
    Commit,
    Message,
    Missed,
    PeerMacs,
    Result,
    Signed,
    Verifier,
    decode,
    encode,
    encode_unsigned,
)
from mercat.auctioneer.opening import PendingCommitments, Schedule
from mercat.auctioneer.round import (
    HONEST,
    Behavior,
    RoundContext,
    RoundInbox,
    RoundResult,
    run_protocol,
)
from mercat.auctioneer.transport import DropLog, Received, Transport
from mercat.errors import ProtocolError, RoundAbortedError
from mercat.identity import Keypair

if TYPE_CHECKING:  # SQLAlchemy is imported only by providers that keep a log
    from mercat.auctioneer.result_log import ResultLog

log = logging.getLogger("mercat.auctioneer.node")
FINISHED_MEMORY = 1024  # finished rounds remembered, so their late messages are dropped
# ... and at most this many bytes of their outcomes: a round may hold up to max_bids bids,
# so 1024 full rounds would be gigabytes. Older rounds are answered from the result log.
FINISHED_BYTES = 256 * 1024 * 1024
MAX_CLIENTS_PER_ROUND = 1024


@dataclass
class _Round:
    id: int
    inbox: RoundInbox
    opened: float  # loop time it opened (schedule: its scheduled opening)
    bids_close: float  # loop time bidding closes at the latest
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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if me not in params.providers:
            raise ValueError(f"{me!r} is not one of the providers {params.providers}")
        check_sealing(params, tuple(sealing_clients), f"provider {me}")
        self.me = me
        self.params = params
        self.key = key
        self.peer_keys = dict(peer_keys)
        self.transport = transport
        self.sealing = frozenset(sealing_clients)
        # The schedule reads the wall clock (simulations pass their virtual one); deadlines
        # run on the event loop's clock.
        self.wall_clock = wall_clock
        self.schedule = Schedule.of(params) if params.opening == "schedule" else None
        self.pending = PendingCommitments(
            needed=params.k + 1, quota=params.max_open_rounds, ttl=params.phase_timeout
        )
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
        self.macs = PeerMacs(me, key, self.peer_keys)
        self._last_encoded: tuple[Message, bytes, bytes] | None = None
        self.rounds: dict[int, _Round] = {}
        self.finished: OrderedDict[int, RoundResult] = OrderedDict()
        self._finished_sizes: dict[int, int] = {}  # round -> bytes its remembered outcome holds
        self._finished_frames: dict[int, list[bytes]] = {}  # its signed Result, once sent
        self._finished_bytes = 0
        self.dropped: dict[str, int] = {}
        self._drop_log = DropLog(log)
        self._stopping = asyncio.Event()
        self._receiving: asyncio.Future[Received] | None = None

    # --- the receive loop ---------------------------------------------------------------

    async def serve(self) -> None:
        """Receive and dispatch until `stop()`; then cancel the rounds still running."""
        # Per message, the loop awaits one receive, which `stop()` cancels, and then takes
        # whatever else has arrived without awaiting (under load peers' messages queue up):
        # an asyncio.wait on (receive, stop) per message cost a provider a few percent of
        # its CPU at k = 3.
        me = asyncio.current_task()
        try:
            while not self._stopping.is_set():
                receive = self._receiving = asyncio.ensure_future(self.transport.recv())
                try:
                    received = await receive
                except asyncio.CancelledError:
                    if self._stopping.is_set() and (me is None or not me.cancelling()):
                        break  # stop() cancelled the receive, nobody cancelled serve()
                    raise
                finally:
                    self._receiving = None
                self.handle(received)
                while not self._stopping.is_set():
                    ready = self.transport.recv_nowait()
                    if ready is None:
                        break
                    self.handle(ready)
        finally:
            for rnd in list(self.rounds.values()):
                if rnd.task is not None:
                    rnd.task.cancel()
            tasks = [r.task for r in self.rounds.values() if r.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()
        if self._receiving is not None:
            self._receiving.cancel()

    def handle(self, received: Received) -> None:
        """Decode, authenticate and file one inbound message (drop and log a bad one)."""
        try:
            signed = decode(
                received.frames,
                self._key_of,
                max_bytes=self.params.max_message_bytes,
                verifier=self.verifier,
                macs=self.macs,
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
        if cls.to_client or sender == self.me:
            return None  # providers do not answer providers as clients; nor themselves
        return self.peer_keys.get(sender)

    def _drop(self, why: str, detail: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        self._drop_log.warning(why, "%s dropped a message (%s): %s", self.me, why, detail)

    def dispatch(self, signed: Signed, route: Any) -> None:
        message = signed.message
        r = message.round
        if r not in self.finished and r not in self.rounds:
            self._recall(r)
        if r in self.finished:
            if isinstance(message, BidBatch):
                self._drop("late-bids", f"round {r} is over; {signed.sender[:12]}… gets its result")
                self.transport.reply(route, self._late_result(r))
            return
        rnd = self.rounds.get(r) or self._admit(signed, route)
        if rnd is None:
            return
        if isinstance(message, BidBatch):
            self._add_bids(rnd, signed.sender, message, route)
        else:
            rnd.inbox.put(signed.sender, message)

    # --- rounds -------------------------------------------------------------------------

    def _admit(self, signed: Signed, route: Any) -> _Round | None:
        """Open the round `signed` names if the opening rule lets this message open it;
        else refuse it: a bid batch is answered with `Missed`, a peer's commitment (sealed
        opening) is held until k+1 peers committed, anything else is dropped."""
        message, r = signed.message, signed.message.round
        loop = asyncio.get_running_loop()
        is_bids = isinstance(message, BidBatch)
        if self.schedule is not None:
            wall = self.wall_clock()
            refusal = self.schedule.refusal(r, wall)
            if refusal is None:
                offset = loop.time() - wall  # wall-clock instants as loop times
                opened = self.schedule.opens(r) + offset
                return self._open(r, signed, route, opened, self.schedule.closes(r) + offset)
        elif is_bids and signed.sender in self.sealing:
            now = loop.time()
            return self._open(r, signed, route, now, now + self.params.bid_window)
        elif isinstance(message, Commit):
            if not self.pending.hold(r, signed.sender, message, loop.time()):
                return None  # fewer than k+1 peers have committed: it may be no real round
            # k+1 peers closed bidding, an honest one among them: the round is real. Take
            # bids a little longer (the sealing batch may be on its way), but short of the
            # peers' phase timeout, which is how long they wait for this commitment.
            now = loop.time()
            window = min(self.params.bid_window, self.params.phase_timeout / 2)
            return self._open(r, signed, route, now, now + window)
        else:
            refusal = f"round {r} is not open here: its sealing clients open rounds"
        if is_bids:
            self._drop("round-not-open", f"{len(message.bids)} bids from {signed.sender[:12]}…")
            self._refuse(route, r, refusal, result_follows=False)
        else:
            self._drop("round-not-open", f"{message.kind} from {signed.sender}: {refusal}")
        return None

    def _open(
        self, r: int, signed: Signed, route: Any, opened: float, bids_close: float
    ) -> _Round | None:
        """A new round, unless the table of open rounds is full (the opening rules keep it
        from filling: this is the last line of defence)."""
        # Rounds still taking bids count; running ones end by their own deadlines.
        if sum(rnd.bidding for rnd in self.rounds.values()) >= self.params.max_open_rounds:
            reason = f"{self.params.max_open_rounds} rounds take bids here already"
            self._drop("too-many-rounds", f"round {r} from {signed.sender[:12]}: {reason}")
            if isinstance(signed.message, BidBatch):
                self._refuse(route, r, f"round {r} cannot open: {reason}", result_follows=False)
            return None
        loop = asyncio.get_running_loop()
        rnd = _Round(r, RoundInbox(self.params.max_message_bytes), opened, bids_close)
        self.rounds[r] = rnd
        for sender, commitment in self.pending.take(r, loop.time()):
            rnd.inbox.put(sender, commitment)
        rnd.task = loop.create_task(self._run(rnd), name=f"{self.me}-round-{r}")
        return rnd

    def _refuse(self, route: Any, r: int, reason: str, *, result_follows: bool) -> None:
        """Tell a client at once that its batch was not taken here, and why."""
        self.transport.reply(route, encode(Missed(r, reason, result_follows), self.me, self.key))

    def _add_bids(self, rnd: _Round, client: str, batch: BidBatch, route: Any) -> None:
        if len(rnd.clients) < MAX_CLIENTS_PER_ROUND:
            rnd.clients[route] = None
        follows = route in rnd.clients  # its Result will reach this client
        if rnd.bidding and asyncio.get_running_loop().time() >= rnd.bids_close:
            # The clock closed bidding, whether or not the round's task has woken up yet
            # (a round first named after its close, or a loop busy with other work).
            rnd.bidding = False
        if not rnd.bidding:
            self._drop("late-bids", f"round {rnd.id}: {len(batch.bids)} bids from {client[:12]}…")
            reason = f"bidding for round {rnd.id} closed here before your batch arrived"
            self._refuse(route, rnd.id, reason, result_follows=follows)
            return
        if self.bidder_keys is not None:
            batch = self._registered_only(rnd, client, batch)
        if rnd.bid_count + len(batch.bids) > self.params.max_bids:
            self._drop("too-many-bids", f"round {rnd.id}: over {self.params.max_bids} bids")
            reason = f"round {rnd.id} holds its limit of {self.params.max_bids} bids here"
            self._refuse(route, rnd.id, reason, result_follows=follows)
            return
        if len(batch.bids):  # an empty batch adds nothing: kept, any client could pile them up
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
            async with asyncio.timeout_at(rnd.bids_close):
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
        payload = result.outcome.encode() if result.outcome is not None else b""
        self._remember(result, payload)
        if self.result_log is not None:  # before the replies: what a client saw is on disk
            try:
                self.result_log.record(self.me, result, payload)
            except Exception:  # a full disk must not stop the auction; say so loudly
                log.exception(
                    "%s: round %d could not be written to the result log", self.me, rnd.id
                )
        if rnd.clients:  # one signed Result for every client of the round
            frames = self._result_frames(result, payload)
            self._keep_frames(result.round, frames)
            for route in rnd.clients:
                self.transport.reply(route, frames)
        if self.on_result is not None:
            self.on_result(result)

    def _remember(self, result: RoundResult, payload: bytes | None = None) -> None:
        """Keep what a late message for the round is answered with: the outcome, not the
        agreed bids; the most recent rounds, within FINISHED_MEMORY and FINISHED_BYTES."""
        if payload is None:
            payload = result.outcome.encode() if result.outcome is not None else b""
        r = result.round
        if r in self.finished:
            self._forget(r)
        # The encoding, and the Python objects of the outcome's bidder ids beside it.
        size = len(payload) + 64 * (len(result.outcome.bidders) if result.outcome else 0)
        self.finished[r] = replace(result, agreed=None)
        self._finished_sizes[r] = size
        self._finished_bytes += size
        self._evict()

    def _late_result(self, r: int) -> list[bytes]:
        """The signed Result of finished round r, for a client asking again: signed once and
        kept, so that however many late batches name the round, their replies share one
        copy of the outcome (large ones are sent without a copy) and cost no signature."""
        frames = self._finished_frames.get(r)
        if frames is None:
            frames = self._result_frames(self.finished[r])
            self._keep_frames(r, frames)
        return frames

    def _keep_frames(self, r: int, frames: list[bytes]) -> None:
        if r not in self._finished_sizes or r in self._finished_frames:
            return
        size = sum(len(f) for f in frames)
        self._finished_frames[r] = frames
        self._finished_sizes[r] += size
        self._finished_bytes += size
        self._evict()

    def _evict(self) -> None:
        """Forget the oldest finished rounds until FINISHED_MEMORY and FINISHED_BYTES hold
        (the latest round is always kept)."""
        while len(self.finished) > 1 and (
            len(self.finished) > FINISHED_MEMORY or self._finished_bytes > FINISHED_BYTES
        ):
            self._forget(next(iter(self.finished)))

    def _forget(self, r: int) -> None:
        del self.finished[r]
        self._finished_frames.pop(r, None)
        self._finished_bytes -= self._finished_sizes.pop(r)

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
        return encode(message, self.me, self.key)

    def _frames(self, to: str, message: Message) -> list[bytes]:
        """`message` to the peer `to`: MAC-tagged (`PeerMacs`), or signed where the two
        share no MAC key (a peer key that is no usable curve point). A broadcast asks for
        one message's frames once per peer in a row, so its header and body are encoded
        once (the last message is kept, by identity)."""
        if to not in self.macs:
            return encode(message, self.me, self.key)
        last = self._last_encoded
        if last is None or last[0] is not message:
            last = self._last_encoded = (message, *encode_unsigned(message, self.me))
        return self.macs.frames(to, last[1], last[2])


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
