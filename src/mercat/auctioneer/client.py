"""The bidder client: send bids to every provider before the deadline, collect the results.

A bid must reach every provider in time; one that reaches none, arrives after a provider
closed bidding, or is invalid is the neutral bid ⊥ there, and the bid agreement makes all
providers treat the bidder alike. The client then waits for the m signed Results and applies
the seed's definition of the outcome: (x, p) if every provider output the same pair, ⊥
otherwise (including a provider that did not answer before the client's timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import PeersFile
from mercat.auctioneer.messages import BidBatch, Result, decode, encode
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.transport import Transport
from mercat.errors import MalformedMessageError
from mercat.identity import Keypair


@dataclass(frozen=True)
class ClientOutcome:
    """What the client saw for one round."""

    round: int
    outcome: Outcome | None  # None: ⊥
    results: dict[str, Result]  # per provider that answered
    seconds: float  # from sending the bids to the last Result (or the timeout)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is not None


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
        self._pending: dict[int, dict[str, Result]] = {}

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def submit(self, round_id: int, bids: BidVector, *, final: bool = True) -> None:
        """Send the same batch to every provider (signed once)."""
        frames = encode(BidBatch(round_id, bids, final), self.key.public, self.key)
        for provider in self.providers:
            self.transport.send(provider, frames)

    async def results(
        self, round_id: int, timeout: float, grace_after_bottom: float = 1.0
    ) -> dict[str, Result]:
        """The Results of `round_id` that arrive within `timeout` seconds (all m, or fewer).

        Once one provider reports ⊥ the outcome is ⊥ whatever the others say, so the wait
        shrinks to `grace_after_bottom` more seconds (to hear the others' reasons)."""
        got = self._pending.pop(round_id, {})
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout) as scope:
                while len(got) < len(self.providers):
                    received = await self.transport.recv()
                    try:
                        signed = decode(
                            received.frames,
                            lambda sender, cls: self._keys.get(sender) if cls is Result else None,
                            max_bytes=self.peers.params.max_message_bytes,
                        )
                    except MalformedMessageError:
                        continue
                    message = signed.message
                    if not isinstance(message, Result):
                        continue
                    if message.round == round_id:
                        got[signed.sender] = message
                        if not message.ok:
                            shorter = loop.time() + grace_after_bottom
                            when = scope.when()
                            scope.reschedule(shorter if when is None else min(when, shorter))
                    else:  # an earlier or later round's result: keep it for its caller
                        self._pending.setdefault(message.round, {})[signed.sender] = message
        except TimeoutError:
            pass
        return got

    async def run_round(self, round_id: int, bids: BidVector, timeout: float) -> ClientOutcome:
        """Submit, wait for the results, and decide the outcome."""
        started = time.perf_counter()
        self.submit(round_id, bids)
        results = await self.results(round_id, timeout)
        outcome, reason = decide_outcome(results, self.providers)
        return ClientOutcome(round_id, outcome, results, time.perf_counter() - started, reason)
