"""One round of the distributed auctioneer at one provider (seed 003, Fig. 1 and 3).

    bids received b^j
      -> phase 1  Commit    report and coin-share commitments, parameters digest
      -> phase 2  Reveal    report digests and coin shares, echo of the commitments held
                  combine   common coin R                            (common_coin)
      -> phase 2b Report    the full reports, only if the digests differ
                  decide    bid agreement: the agreed vector b       (bid_agreement)
      -> phase 3  Validate  input validation: digest of (parameters, b) (input_validation)
         (when the digests are all equal, the input is every provider's own report and the
         reveals already broadcast its digest: they serve as the input validation)
      -> allocator          the mechanism's task graph with data transfer (task_graph)
      -> (x, p), or ⊥ at the first failed check or missing message

Every wait has a deadline (`phase_timeout` per phase, `task_timeout` for the allocator), so a
crashed or silent peer ends the round in ⊥ in bounded time, never in a hang.

The coin is committed in phase 1, together with the reports, and revealed in phase 2: the
bids are fixed before anyone can know the coin, and the coin costs no extra round trip.

`Behavior` is where a provider *could* deviate: the honest one here does exactly what the
protocol says; `mercat.auctioneer.deviations` overrides its hooks to lie, equivocate,
withhold, delay or corrupt, which is how the tests inject coalitions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mercat.auctioneer import bid_agreement, common_coin, input_validation, task_graph
from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import instance_for
from mercat.auctioneer.messages import (
    Abort,
    Commit,
    Message,
    Report,
    Reveal,
    Transfer,
    Validate,
)
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.transport import DropLog
from mercat.errors import RoundAbortedError

MAX_TRANSFERS_PER_SENDER = 64
log = logging.getLogger("mercat.auctioneer.round")
_transfer_drops = DropLog(log)


class Behavior:
    """The honest provider. Each hook is a point where a deviating provider differs."""

    name = "honest"
    # What a simulation gives this provider (`mercat.auctioneer.simulation`): seconds its
    # clock runs ahead of the others', and client keys its own node lets open and close
    # its rounds instead of the configured sealing clients (a deviator's own sybils).
    clock_skew: float = 0.0
    sealing_clients: tuple[str, ...] = ()

    def before_bids(
        self, round_id: int, sign: Callable[[Message], list[bytes]]
    ) -> list[tuple[str, list[bytes]]]:
        """(endpoint, frames) this provider sends before the clients bid in round
        `round_id` (honest: nothing); `sign` signs a message as this provider."""
        return []

    def report_for(self, peer: str, received: BidVector) -> BidVector:
        """The bid vector the provider reports to `peer` (honest: what it received)."""
        return received

    def coin_share(self, share: bytes) -> bytes:
        """The coin share it commits to (honest: the uniform draw)."""
        return share

    def outgoing(self, message: Message, to: str) -> Message | None:
        """The message actually sent to `to` (None: withheld)."""
        return message

    def delay(self, message: Message, to: str) -> float:
        """Seconds to hold a message back before sending it."""
        return 0.0

    def task_result(self, task: str, value: Any) -> Any:
        """The result it hands on for a task it computed."""
        return value

    def junk(self, message: Message, to: str) -> list[list[bytes]]:
        """Extra raw frames sent with a message (forgeries, garbage)."""
        return []


HONEST = Behavior()


class RoundInbox:
    """The messages of one round, one slot per (kind, task, sender); waits with deadlines.

    A second, different message in a slot is equivocation towards this provider and an
    Abort from a peer ends the round: either makes every wait raise RoundAbortedError."""

    def __init__(self, transfer_bytes: int | None = None) -> None:
        """`transfer_bytes`: the most bytes of one sender's transfers held (None: no bound
        but MAX_TRANSFERS_PER_SENDER); a provider passes its `max_message_bytes`."""
        self.slots: dict[tuple[str, str, str], Message] = {}
        self.transfers_by_sender: dict[str, int] = {}
        self.transfer_bytes = transfer_bytes
        self.transfer_bytes_by_sender: dict[str, int] = {}
        self.failure: str | None = None
        self.changed = asyncio.Event()
        # What the running `gather` still waits for: (kind, task) and the senders missing.
        # `put` wakes it only when the last of them arrives (or the round fails), not once
        # per message: at k = 3 a phase brings 7 messages, each wake-up a pass through the
        # event loop and a new timeout. One gather at a time: a round awaits its phases and
        # tasks one after another.
        self._wanted: tuple[str, str] | None = None
        self._missing: set[str] = set()

    def put(self, sender: str, message: Message) -> None:
        if isinstance(message, Abort):
            self.fail(f"{sender} aborted: {message.reason}")
            return
        task = message.task if isinstance(message, Transfer) else ""
        key = (message.kind, task, sender)
        held = self.slots.get(key)
        if held is None:
            if task:
                assert isinstance(message, Transfer)
                count = self.transfers_by_sender.get(sender, 0)
                size = self.transfer_bytes_by_sender.get(sender, 0) + len(message.value)
                if count >= MAX_TRANSFERS_PER_SENDER or (
                    self.transfer_bytes is not None and size > self.transfer_bytes
                ):
                    _transfer_drops.warning(
                        "transfer",
                        "round %d: transfer of %s from %s dropped: it holds %d transfers, %d bytes",
                        message.round,
                        task,
                        sender,
                        count,
                        size - len(message.value),
                    )
                    return
                self.transfers_by_sender[sender] = count + 1
                self.transfer_bytes_by_sender[sender] = size
            self.slots[key] = message
            if self._wanted == (message.kind, task) and sender in self._missing:
                self._missing.discard(sender)
                if not self._missing:
                    self.changed.set()
        elif held != message:
            self.fail(f"{sender} sent two different {message.kind} messages")

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.changed.set()

    async def gather(
        self, kind: str, senders: Sequence[str], deadline: float, task: str = ""
    ) -> dict[str, Message]:
        loop = asyncio.get_running_loop()
        while True:
            if self.failure is not None:
                raise RoundAbortedError(self.failure)
            got = {s: self.slots[(kind, task, s)] for s in senders if (kind, task, s) in self.slots}
            if len(got) == len(senders):
                return got
            remaining = deadline - loop.time()
            if remaining <= 0:
                missing = [s for s in senders if s not in got]
                what = f"{kind} {task}".strip()
                raise RoundAbortedError(f"timeout: no {what} from {', '.join(missing)}")
            self.changed.clear()
            self._wanted, self._missing = (kind, task), {s for s in senders if s not in got}
            try:
                async with asyncio.timeout(remaining):
                    await self.changed.wait()
            except TimeoutError:
                pass
            finally:
                self._wanted = None


PHASES = ("bids", "commit", "reveal", "validate", "outcome")
"""A round's milestones at one provider: bidding closed; every commitment, every reveal
held; the input validated; the allocator's output."""


@dataclass
class RoundResult:
    """What a provider outputs for a round: the outcome, or ⊥ with the reason."""

    round: int
    outcome: Outcome | None
    reason: str = ""
    agreed: BidVector | None = None
    coin: int | None = None
    seconds: float = 0.0
    # (phase, seconds since the round opened here) for each phase of PHASES it completed.
    phases: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is not None


class RoundContext:
    """One provider's view of one round: its identity, parameters, inbox and send path.

    `send` signs and hands frames to the transport through the provider's `Behavior`;
    `compute` runs a task inline or in a worker thread (`offload`)."""

    def __init__(
        self,
        *,
        me: str,
        round_id: int,
        params: ProtocolParams,
        inbox: RoundInbox,
        send_frames: Callable[[str, Message], list[bytes]],
        deliver: Callable[[str, list[bytes]], None],
        behavior: Behavior = HONEST,
        rng: np.random.Generator | None = None,
        offload: bool = False,
        cache: dict[tuple[bytes, str], Any] | None = None,
        opened: float | None = None,
    ) -> None:
        self.me = me
        self.opened = opened  # loop time the round opened here (phases count from it)
        self.round = round_id
        self.params = params
        self.inbox = inbox
        self._encode = send_frames
        self._deliver = deliver
        self.behavior = behavior
        self.rng = rng
        self.offload = offload
        self.cache = cache
        self.others = tuple(p for p in params.providers if p != me)

    # --- sending ------------------------------------------------------------------------

    def send(self, message: Message, to: Sequence[str]) -> None:
        """Send `message` to each of `to` (through the behavior); the frames are made per
        peer (a MAC per peer; the node encodes each distinct message once)."""
        loop = asyncio.get_running_loop()
        for peer in to:
            actual = self.behavior.outgoing(message, peer)
            for junk in self.behavior.junk(message, peer):
                self._deliver(peer, junk)
            if actual is None:
                continue
            frames = self._encode(peer, actual)
            delay = self.behavior.delay(actual, peer)
            if delay > 0:
                loop.call_later(delay, self._deliver, peer, frames)
            else:
                self._deliver(peer, frames)

    def broadcast(self, message: Message) -> None:
        """Send to every other provider and file one's own copy in one's own inbox."""
        self.inbox.put(self.me, message)
        self.send(message, self.others)

    def deadline(self, seconds: float) -> float:
        return asyncio.get_running_loop().time() + seconds

    # --- TaskNet ------------------------------------------------------------------------

    async def compute(self, fn: Callable[..., Any], *args: Any, heavy: bool = True) -> Any:
        if self.offload and heavy:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def task_result(self, task: str, value: Any) -> Any:
        return self.behavior.task_result(task, value)

    async def transfer(self, task: str, value: bytes, to: Sequence[str]) -> None:
        self.send(Transfer(self.round, task, value), to)

    async def gather_transfers(
        self, task: str, senders: Sequence[str], deadline: float
    ) -> dict[str, bytes]:
        got = await self.inbox.gather(Transfer.kind, senders, deadline, task=task)
        return {s: m.value for s, m in got.items()}  # type: ignore[attr-defined]


async def run_protocol(ctx: RoundContext, received: BidVector) -> RoundResult:
    """The round at provider `ctx.me`, from the bids it received to (x, p); raises
    RoundAbortedError (⊥) at the first failed check or missing message."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    params, me, r, behavior = ctx.params, ctx.me, ctx.round, ctx.behavior
    opened = started if ctx.opened is None else ctx.opened
    marks: list[tuple[str, float]] = [("bids", started - opened)]

    def mark(phase: str) -> None:  # a milestone of PHASES, in seconds since the round opened
        marks.append((phase, loop.time() - opened))
        log.debug("%s round %d: %s after %.4f s", me, r, phase, marks[-1][1])

    providers = params.providers
    params_digest = params.digest()

    # Phase 1: commit to the report (per peer: a deviator may commit to different ones)
    # and to a coin share.
    share = behavior.coin_share(common_coin.draw_share(ctx.rng))
    coin_salt = _salt(ctx.rng)
    coin_commitment = common_coin.coin_commitment(r, me, share, coin_salt)
    reports: dict[str, tuple[BidVector, bytes, bytes]] = {}  # peer -> (report, salt, commitment)
    by_digest: dict[bytes, tuple[BidVector, bytes, bytes]] = {}
    for peer in providers:
        report = behavior.report_for(peer, received)  # honest: `received`, to everyone
        held = by_digest.get(report.digest())
        if held is None:
            salt = _salt(ctx.rng)
            held = (report, salt, bid_agreement.report_commitment(r, me, report.digest(), salt))
            by_digest[report.digest()] = held
        reports[peer] = held
    # One message object per distinct report, so an honest provider signs each phase once.
    commit_of = {
        d: Commit(r, params_digest, held[2], coin_commitment) for d, held in by_digest.items()
    }
    own = reports[me][0].digest()
    ctx.inbox.put(me, commit_of[own])
    _send_by_report(ctx, reports, commit_of)
    got = await ctx.inbox.gather(Commit.kind, providers, ctx.deadline(params.phase_timeout))
    mark("commit")
    held_commits: list[Commit] = [got[p] for p in providers]  # type: ignore[misc]
    for p, c in zip(providers, held_commits, strict=True):
        if c.params_digest != params_digest:
            raise RoundAbortedError(f"{p} runs with other protocol parameters")
    echo = bid_agreement.commitments_digest(
        [c.report_commitment + c.coin_commitment for c in held_commits]
    )

    # Phase 2: reveal; check the echo and that every reveal opens its commitment.
    reveal_of = {d: Reveal(r, d, held[1], share, coin_salt, echo) for d, held in by_digest.items()}
    ctx.inbox.put(me, reveal_of[own])
    _send_by_report(ctx, reports, reveal_of)
    got = await ctx.inbox.gather(Reveal.kind, providers, ctx.deadline(params.phase_timeout))
    reveals: list[Reveal] = [got[p] for p in providers]  # type: ignore[misc]
    for p, c, v in zip(providers, held_commits, reveals, strict=True):
        if v.commitments_digest != echo:
            raise RoundAbortedError(f"{p} holds other commitments (equivocation in phase 1)")
        if not bid_agreement.opens(c.report_commitment, r, p, v.report_digest, v.report_salt):
            raise RoundAbortedError(f"{p}'s report does not open its commitment")
        if not common_coin.opens(c.coin_commitment, r, p, v.coin_share, v.coin_salt):
            raise RoundAbortedError(f"{p}'s coin share does not open its commitment")
    mark("reveal")
    coin = common_coin.combine([v.coin_share for v in reveals])
    digests = {p: v.report_digest for p, v in zip(providers, reveals, strict=True)}
    if len(set(digests.values())) == 1:
        # Unanimous (the common case): every provider's input is its own report, whose
        # digest the reveals have just broadcast, so the reveals *are* the input validation.
        agreed = reports[me][0].valid()
        input_validation.check(own, digests, providers)
    else:
        # Phase 2b: the full reports, each checked against its revealed digest.
        report_of = {d: Report(r, held[0]) for d, held in by_digest.items()}
        ctx.inbox.put(me, report_of[own])
        _send_by_report(ctx, reports, report_of)
        got = await ctx.inbox.gather(Report.kind, providers, ctx.deadline(params.phase_timeout))
        full: list[BidVector] = [got[p].report for p in providers]  # type: ignore[attr-defined]
        for p, report in zip(providers, full, strict=True):
            if report.digest() != digests[p]:
                raise RoundAbortedError(f"{p}'s report does not match its revealed digest")
        agreed = bid_agreement.decide(full, params.rule)

        # Phase 3: input validation of the decided vector.
        digest = input_validation.input_digest(agreed, params_digest)
        ctx.broadcast(Validate(r, digest))
        got = await ctx.inbox.gather(Validate.kind, providers, ctx.deadline(params.phase_timeout))
        input_validation.check(digest, {p: m.digest for p, m in got.items()}, providers)  # type: ignore[attr-defined]
    mark("validate")

    # The allocator: the mechanism's task graph.
    graph = instance_for(params.mechanism).graph(agreed, params, common_coin.mechanism_seed(coin))
    graph.check(providers, params.k)
    outcome = await task_graph.execute(graph, me, ctx, ctx.deadline(params.task_timeout), ctx.cache)
    mark("outcome")
    return RoundResult(r, outcome, "", agreed, coin, loop.time() - started, tuple(marks))


def _send_by_report(
    ctx: RoundContext,
    reports: dict[str, tuple[BidVector, bytes, bytes]],
    message_of: dict[bytes, Message],
) -> None:
    """Send each peer the message built for the report it is told about."""
    for digest, message in message_of.items():
        peers = [p for p in ctx.others if reports[p][0].digest() == digest]
        if peers:
            ctx.send(message, peers)


def _salt(rng: np.random.Generator | None) -> bytes:
    return rng.bytes(bid_agreement.SALT_BYTES) if rng is not None else secrets.token_bytes(32)
