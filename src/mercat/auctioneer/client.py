"""The bidder client: send bids to every provider before the deadline, collect the results.

A bid must reach every provider in time; one that reaches none, arrives after a provider
closed bidding, or is invalid is the neutral bid ⊥ there, and the bid agreement makes all
providers treat the bidder alike. The client then waits for the m signed Results and applies
the seed's definition of the outcome: (x, p) if every provider output the same pair, ⊥
otherwise (including a provider that did not answer before the client's timeout).

A round can deliver without this client's bids: they arrived after bidding closed, or at a
provider where the round was not open (each such provider says so at once with a signed
`Missed`). The client never reports "ok" then. Its verdict (`verdict`) is one of:

- "ok": every provider output the same (x, p), and every bid the client sent is in it (the
  outcome lists the agreed bidders; an invalid bid is ⊥, so it is not);
- "missed": no provider took the batch, or the round's outcome leaves some of the client's
  bids out (with the providers' reasons, when they gave them);
- "⊥": the providers did not all output the same (x, p).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import PeersFile
from mercat.auctioneer.messages import BidBatch, Missed, Result, decode, encode
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.transport import DropLog, Transport
from mercat.errors import MalformedMessageError, ProtocolError
from mercat.identity import Keypair

log = logging.getLogger("mercat.auctioneer.client")
OK, MISSED, BOTTOM = "ok", "missed", "⊥"
MAX_PENDING_ROUNDS = 64


@dataclass(frozen=True)
class ClientOutcome:
    """What the client saw for one round."""

    round: int
    outcome: Outcome | None  # the outcome all m providers output; None: ⊥ (or no answer)
    results: dict[str, Result]  # per provider that answered
    seconds: float  # from sending the bids to the last Result (or the timeout)
    reason: str = ""
    status: str = OK  # OK, MISSED or BOTTOM (see `verdict`)
    missing: tuple[str, ...] = ()  # the client's bidders the outcome leaves out
    refusals: dict[str, str] = field(default_factory=dict)  # provider -> why it did not take them

    @property
    def ok(self) -> bool:
        """The round delivered, with every bid this client sent."""
        return self.status == OK


@dataclass
class Answers:
    """The providers' answers to one batch: Results, and `Missed` refusals."""

    results: dict[str, Result] = field(default_factory=dict)
    refusals: dict[str, Missed] = field(default_factory=dict)

    def add(self, sender: str, message: Result | Missed) -> None:
        if isinstance(message, Result):
            self.results[sender] = message
        else:
            self.refusals[sender] = message

    def settled(self, providers: tuple[str, ...]) -> bool:
        """Nothing more to wait for: every provider sent its Result or refused the batch
        without a Result to follow, or every provider refused it (then no outcome can hold
        these bids, whatever the Results that may follow say)."""
        if all(p in self.refusals for p in providers):
            return True
        return all(
            p in self.results or (p in self.refusals and not self.refusals[p].result_follows)
            for p in providers
        )


def verdict(
    answers: Answers, providers: tuple[str, ...], bids: BidVector
) -> tuple[str, Outcome | None, str, tuple[str, ...]]:
    """(status, outcome, reason, the client's bidders left out) for a client that sent
    `bids`, from the providers' answers (see the module docstring)."""
    refusals = {p: m.reason for p, m in answers.refusals.items()}
    by_reason: dict[str, list[str]] = {}
    for p in sorted(refusals):
        by_reason.setdefault(refusals[p], []).append(p)
    why_refused = "; ".join(f"{', '.join(ps)}: {reason}" for reason, ps in by_reason.items())
    if providers and all(p in refusals for p in providers):
        return MISSED, None, f"no provider took your bids ({why_refused})", tuple(bids.ids)
    outcome, reason = decide_outcome(answers.results, providers)
    if outcome is None:
        if refusals:
            reason += f"; not taken at {why_refused}"
        return BOTTOM, None, reason, ()
    if bids.ids == outcome.bidders:  # the common case of a lone client: a tuple compare
        missing: tuple[str, ...] = ()
    else:  # an invalid bid is ⊥ at every provider, so it is missing too
        listed = set(outcome.bidders)
        missing = tuple(b for b in bids.ids if b not in listed)
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        reason = f"the round's outcome leaves out {len(missing)} of your bids ({shown})" + (
            f"; not taken at {why_refused}" if refusals else ""
        )
        return MISSED, outcome, reason, missing
    return OK, outcome, "", ()


def decide_outcome(
    results: Mapping[str, Result], providers: tuple[str, ...]
) -> tuple[Outcome | None, str]:
    """(x, p) if every provider answered ok with the same encoded outcome, else (None, why)."""
    missing = [p for p in providers if p not in results]
    if missing:
        return None, f"no result from {', '.join(missing)}"
    failed = [p for p in providers if not results[p].ok]
    if failed:
        return None, f"{failed[0]} output ⊥: {results[failed[0]].reason}"
    first = results[providers[0]].outcome
    if any(results[p].outcome != first for p in providers[1:]):
        return None, "providers output different outcomes"
    try:
        return Outcome.decode(first), ""
    except MalformedMessageError as exc:
        return None, f"undecodable outcome: {exc}"


def slowest_phases(results: Iterable[Result]) -> dict[str, float]:
    """For each milestone of a round (`round.PHASES`), the seconds after which the slowest
    provider reached it, from the timings the providers put in their Results."""
    out: dict[str, float] = {}
    for result in results:
        for name, microseconds in result.phases:
            out[name] = max(out.get(name, 0.0), microseconds / 1e6)
    return out


class BidderClient:
    """Talks to the providers of a peers file over a transport (ZeroMQ by default)."""

    def __init__(self, peers: PeersFile, key: Keypair, transport: Transport | None = None) -> None:
        if transport is None:
            from mercat.auctioneer.zmq_transport import ZmqTransport

            transport = ZmqTransport(peers.addresses(), max_bytes=peers.params.max_message_bytes)
        self.peers = peers
        self.key = key
        self.transport = transport
        self.providers = peers.params.providers
        self._keys = peers.keys()
        self._pending: dict[int, Answers] = {}
        self.dropped = 0  # inbound messages dropped as malformed or unauthenticated
        self._drop_log = DropLog(log)

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def submit(self, round_id: int, bids: BidVector, *, final: bool = True) -> None:
        """Send the same batch to every provider (signed once)."""
        frames = encode(BidBatch(round_id, bids, final), self.key.public, self.key)
        for provider in self.providers:
            self.transport.send(provider, frames)

    async def answers(
        self, round_id: int, timeout: float, grace_after_bottom: float = 1.0
    ) -> Answers:
        """The providers' answers for `round_id` that arrive within `timeout` seconds: until
        every provider has answered for good (`Answers.settled`), or the time is up.

        Once one provider reports ⊥ the outcome is ⊥ whatever the others say, so the wait
        shrinks to `grace_after_bottom` more seconds (to hear the others' reasons)."""
        got = self._pending.pop(round_id, None) or Answers()
        if got.settled(self.providers):
            return got
        loop = asyncio.get_running_loop()

        def key_of(sender: str, cls: type) -> str | None:
            return self._keys.get(sender) if cls in (Result, Missed) else None

        try:
            async with asyncio.timeout(timeout) as scope:
                while not got.settled(self.providers):
                    received = await self.transport.recv()
                    try:
                        signed = decode(
                            received.frames, key_of, max_bytes=self.peers.params.max_message_bytes
                        )
                    except ProtocolError as exc:  # malformed, unknown sender, bad signature
                        self.dropped += 1
                        why = type(exc).__name__
                        self._drop_log.warning(
                            why, "bidder client dropped a message (%s): %s", why, exc
                        )
                        continue
                    message = signed.message
                    if not isinstance(message, Result | Missed):
                        continue
                    if message.round != round_id:  # another round's: keep it for its caller
                        self._keep_for_later(signed.sender, message)
                        continue
                    got.add(signed.sender, message)
                    if isinstance(message, Result) and not message.ok:
                        shorter = loop.time() + grace_after_bottom
                        when = scope.when()
                        scope.reschedule(shorter if when is None else min(when, shorter))
        except TimeoutError:
            pass
        return got

    def _keep_for_later(self, sender: str, message: Result | Missed) -> None:
        """File another round's answer for a later `answers` call; only the most recent
        MAX_PENDING_ROUNDS rounds are kept (a provider that sends answers for many rounds
        must not grow the client's memory)."""
        if message.round not in self._pending and len(self._pending) >= MAX_PENDING_ROUNDS:
            del self._pending[next(iter(self._pending))]
        self._pending.setdefault(message.round, Answers()).add(sender, message)

    async def run_round(self, round_id: int, bids: BidVector, timeout: float) -> ClientOutcome:
        """Submit, wait for the answers, and decide the outcome."""
        started = time.perf_counter()
        self.submit(round_id, bids)
        got = await self.answers(round_id, timeout)
        status, outcome, reason, missing = verdict(got, self.providers, bids)
        return ClientOutcome(
            round_id,
            outcome,
            got.results,
            time.perf_counter() - started,
            reason,
            status,
            missing,
            {p: m.reason for p, m in got.refusals.items()},
        )
