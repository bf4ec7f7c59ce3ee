"""When a provider takes bids for a round, and who may make it open one.

Seed 003 (§3.2) assumes that "bidders are expected to submit their bids by some deadline":
a bid that reaches provider j before j stops taking bids is in j's vector b^j, a later one
is ⊥ there. Who sets that deadline matters as much as the protocol after it. If a round
opened at the first message that names it, one deviating provider (or any client, with an
empty batch) could open round r before the real bidders, make the honest providers close
it a bid window later on no bids and deliver that outcome instead of ⊥: a single provider
could change the outcome, which the k-resilience of the seed's Theorem 1 rules out. So a
round opens by one of two rules that no coalition of at most k providers and no client
controls alone (`opening` in the peers file):

- **schedule** (the default): round r takes bids during [start + r·P, start + r·P + W)
  by each provider's clock (`schedule_start`, `round_seconds` P, `bid_window` W). A message
  naming round r creates its state only from `clock_tolerance` before its opening to
  `clock_tolerance` + `phase_timeout` (at most `round_seconds`) after its close, so the
  clock alone decides which
  rounds exist: a message naming any other round is refused, and the table of rounds holds
  at most `Schedule.live_rounds()` of them whatever anyone sends. Clocks must agree within
  the tolerance (NTP keeps them within milliseconds); a bid near the edge that is in time
  at some providers and late at others is treated alike everywhere by the bid agreement.
- **sealed**: the clients listed in `sealing_clients` (the market's operator: what
  `mercat auctioneer local` and the benchmarks use to run rounds back to back) open a round
  with their first batch and close it with their final one. Another client's batch counts
  only while the round is open. A peer's commitment for a round that is not open here is
  held (`PendingCommitments`), and the round opens from peers only once k+1 distinct
  providers have committed to it: at least one of them is honest, and an honest provider
  commits only after it closed bidding, so the round is real. No coalition of k providers
  can open a round, and each provider's held commitments are bounded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mercat.auctioneer.config import ProtocolParams
    from mercat.auctioneer.messages import Message

MAX_ROUND = 2**62  # round ids are integers in [0, 2^62) on the wire


def timestamp(seconds: float) -> str:
    """A wall-clock time as UTC ISO 8601 (what refusals print)."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.3f} s"


@dataclass(frozen=True)
class Schedule:
    """The rounds' bid windows on the wall clock (opening = "schedule")."""

    start: float  # Unix time of round 0's opening
    period: float  # seconds between two openings
    window: float  # seconds a round takes bids
    tolerance: float  # how far the providers' clocks may disagree
    grace: float  # after the close: how late a peer's first message may still open a round

    @classmethod
    def of(cls, params: ProtocolParams) -> Schedule:
        return cls(
            float(params.schedule_start),
            float(params.round_seconds),
            float(params.bid_window),
            float(params.clock_tolerance),
            # A peer commits as it closes bidding, so its commitment comes within network
            # delays of the close; past the phase timeout its sender has given up anyway.
            # At most one period, so that the clock alone bounds the rounds that exist.
            min(float(params.phase_timeout), float(params.round_seconds)),
        )

    def opens(self, r: int) -> float:
        return self.start + r * self.period

    def closes(self, r: int) -> float:
        return self.opens(r) + self.window

    def refusal(self, r: int, now: float) -> str | None:
        """Why a message naming round r may not open it at wall time `now` (None: it may).

        From `tolerance` before the opening (a client or peer whose clock runs a little
        ahead) to `tolerance` + `grace` after the close (a peer that closed at its own
        close sends its commitment; a provider that has heard nothing of the round by then
        could only end it in ⊥, and its peers have)."""
        opens, closes = self.opens(r), self.closes(r)
        if now < opens - self.tolerance:
            return f"round {r} opens for bids at {timestamp(opens)}, in {opens - now:.1f} s"
        if now > closes + self.tolerance + self.grace:
            return f"round {r} closed for bids at {timestamp(closes)}, {now - closes:.1f} s ago"
        return None

    def round_to_bid(self, now: float, margin: float) -> int:
        """The round a client starting now should bid in: the one taking bids now if at
        least `margin` seconds of its window are left, else the next one."""
        if now < self.start:
            return 0
        r = math.floor((now - self.start) / self.period)
        if now + margin <= self.closes(r):
            return r
        return r + 1

    def live_rounds(self) -> int:
        """The most rounds whose messages a provider accepts at any one moment: the clock,
        not the messages, bounds the table of open rounds."""
        span = 2 * self.tolerance + self.window + self.grace
        return math.ceil(span / self.period) + 1


class PendingCommitments:
    """Peers' phase-1 commitments for rounds not open here (opening = "sealed").

    An honest peer commits to round r only after it closed bidding for r, so the first
    message of a round that reaches a provider ahead of the sealing client's batch is a
    `Commit`. They are held here, never opening the round, until `needed` (= k+1) distinct
    peers have committed to it: then at least one honest provider runs it, and it opens
    here too. Each peer holds at most `quota` rounds (a peer's oldest round goes first, so
    a deviator that names many rounds only evicts its own), each for `ttl` seconds (the
    peers' phase timeout: by then they have given up on this provider anyway), and at most
    two different commitments per round (two are enough to prove equivocation once the
    round opens)."""

    def __init__(self, needed: int, quota: int, ttl: float) -> None:
        self.needed = needed
        self.quota = quota
        self.ttl = ttl
        # sender -> round -> (when first held, the distinct commitments held)
        self._held: dict[str, OrderedDict[int, tuple[float, list[Message]]]] = {}

    def hold(self, r: int, sender: str, message: Message, now: float) -> bool:
        """Hold `sender`'s commitment for round r; True when k+1 peers have committed."""
        rounds = self._held.setdefault(sender, OrderedDict())
        self._expire(rounds, now)
        entry = rounds.get(r)
        if entry is None:
            rounds[r] = (now, [message])
            while len(rounds) > self.quota:
                rounds.popitem(last=False)
        elif message not in entry[1] and len(entry[1]) < 2:
            entry[1].append(message)
        return self.support(r, now) >= self.needed

    def support(self, r: int, now: float) -> int:
        """How many peers hold a live commitment for round r."""
        return sum(
            1 for rounds in self._held.values() if r in rounds and now - rounds[r][0] <= self.ttl
        )

    def take(self, r: int, now: float) -> list[tuple[str, Message]]:
        """Remove round r's live commitments and return them (sender, message), to be
        filed in the round's inbox when it opens."""
        out = []
        for sender, rounds in self._held.items():
            entry = rounds.pop(r, None)
            if entry is not None and now - entry[0] <= self.ttl:
                out.extend((sender, message) for message in entry[1])
        return out

    def held(self) -> int:
        """Rounds held, summed over the peers (bounded by peers × quota)."""
        return sum(len(rounds) for rounds in self._held.values())

    def _expire(self, rounds: OrderedDict[int, tuple[float, list[Message]]], now: float) -> None:
        for r in [r for r, (since, _) in rounds.items() if now - since > self.ttl]:
            del rounds[r]
