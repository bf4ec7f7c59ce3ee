"""Deviating providers, for the tests and the deviation trials.

Each class overrides hooks of the honest `Behavior` (mercat.auctioneer.round) to do one of
the things the seed's coalitions might try: lie about the bids received, equivocate (tell
different peers different things), withhold or delay messages, report wrong task results,
bias the coin (a reveal that does not open the commitment, a late reveal, a fixed share),
send a false abort, or inject forged and malformed frames; or attack when rounds take
bids (`mercat.auctioneer.opening`): open the round alone before the clients bid, open it
with an empty batch as a client of its own, or name many future rounds to fill the
providers' tables. The claim under test: at every provider outside the coalition, the
output is either exactly the honest outcome or ⊥.

A coalition coordinates through a shared seed: members built with the same `plan` seed lie
identically (the strongest way to push a majority).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import (
    Abort,
    BidBatch,
    Commit,
    Message,
    Report,
    Reveal,
    Transfer,
    Validate,
    encode,
)
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.round import Behavior
from mercat.identity import Keypair


def perturb_bids(bids: BidVector, rng: np.random.Generator) -> BidVector:
    """A different vector: some prices and quantities changed, some bidders dropped, one
    invented bidder added."""
    n = len(bids)
    price, quantity = bids.price.copy(), bids.quantity.copy()
    if n:
        chosen = rng.random(n) < 0.3
        chosen[rng.integers(n)] = True
        price[chosen] *= rng.uniform(0.5, 1.5, int(chosen.sum()))
        quantity[chosen] *= rng.uniform(0.5, 1.5, int(chosen.sum()))
    keep = rng.random(n) > 0.1
    ids = [bids.ids[i] for i in np.flatnonzero(keep)]
    fake = f"zz-fake-{rng.integers(10**6)}"
    if fake in ids:  # perturbing twice must not list an invented bidder twice
        return BidVector(ids, bids.side[keep], price[keep], quantity[keep])
    return BidVector.from_arrays(
        [*ids, fake],
        np.append(bids.side[keep], 0),
        np.append(price[keep], 2.0),
        np.append(quantity[keep], 1.0),
    )


def perturb_value(value: Any, rng: np.random.Generator) -> Any:
    """A wrong but well-formed task result of the same type."""
    if isinstance(value, Outcome):
        transfers = value.transfers.copy()
        if transfers.size:
            transfers[rng.integers(transfers.size)] += 0.01
        return dataclasses.replace(value, transfers=transfers, facts={**value.facts, "x": 1})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):  # the first float array: a wrong number in it
            field_value = getattr(value, f.name)
            if isinstance(field_value, np.ndarray) and field_value.dtype.kind == "f":
                return dataclasses.replace(value, **{f.name: perturb_value(field_value, rng)})
        return value
    if isinstance(value, np.ndarray):
        out = value.astype(float, copy=True)
        if out.size:
            out.flat[rng.integers(out.size)] += 0.01 + abs(float(out.flat[0])) * 0.1
        return out.astype(value.dtype) if value.dtype.kind == "f" else out
    if isinstance(value, bytes):
        return flip_byte(value, rng)
    if isinstance(value, tuple):
        return tuple(perturb_value(v, rng) if i == 0 else v for i, v in enumerate(value))
    if isinstance(value, dict) and value:
        key = sorted(value)[0]
        return {**value, key: perturb_value(value[key], rng)}
    return value


def flip_byte(data: bytes, rng: np.random.Generator) -> bytes:
    if not data:
        return b"\x00"
    i = int(rng.integers(len(data)))
    return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]


class Deviation(Behavior):
    """A deviating provider: `peers` are the other providers, `targets` the ones it
    deviates towards (all of them unless said otherwise)."""

    name: ClassVar[str] = "deviation"
    # How long after this deviator's `before_bids` frames the clients bid, in bid windows
    # (the sealed opening; under the schedule they bid inside the round's window).
    bids_delay: ClassVar[float] = 0.0

    def __init__(
        self,
        params: ProtocolParams,
        me: str,
        rng: np.random.Generator,
        plan: int = 0,
        targets: Sequence[str] | None = None,
    ) -> None:
        self.params = params
        self.me = me
        self.rng = rng
        self.plan = plan
        others = [p for p in params.providers if p != me]
        self.targets = frozenset(others if targets is None else targets)

    def plan_rng(self, salt: int = 0) -> np.random.Generator:
        """The coalition's shared randomness (same plan, same draws)."""
        return np.random.default_rng([self.plan, salt])


class LieBids(Deviation):
    """Report bids other than those received (the coalition's members lie alike)."""

    name = "lie-bids"

    def report_for(self, peer: str, received: BidVector) -> BidVector:
        return perturb_bids(received, self.plan_rng())


class EquivocateReport(Deviation):
    """Commit to (and reveal) one report to some peers and another report to the others."""

    name = "equivocate-report"

    def report_for(self, peer: str, received: BidVector) -> BidVector:
        if peer in self.targets and sorted(self.targets).index(peer) % 2 == 0:
            return perturb_bids(received, self.plan_rng())
        return received


class EquivocateReveal(Deviation):
    """Reveal, to the targets, a report digest other than the committed one."""

    name = "equivocate-reveal"

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Reveal) and to in self.targets:
            return dataclasses.replace(message, report_digest=self.rng.bytes(32))
        return message


class SwapFullReport(Deviation):
    """Lie about the bids (so that the full reports are exchanged), then send the targets a
    full report other than the one whose digest was revealed."""

    name = "swap-full-report"

    def report_for(self, peer: str, received: BidVector) -> BidVector:
        return perturb_bids(received, self.plan_rng())

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Report) and to in self.targets:
            return dataclasses.replace(message, report=perturb_bids(message.report, self.rng))
        return message


class EquivocateCommitments(Deviation):
    """Send some peers a commitment to a different coin share (the echo exposes it)."""

    name = "equivocate-commit"

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Commit) and to in self.targets:
            return dataclasses.replace(message, coin_commitment=self.rng.bytes(32))
        return message


class LieValidate(Deviation):
    """Claim another allocator input in input validation, to the targets."""

    name = "lie-validate"

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Validate) and to in self.targets:
            return Validate(message.round, self.rng.bytes(32))
        return message


class Withhold(Deviation):
    """Send nothing of one kind of message to the targets (the plan picks the kind)."""

    name = "withhold"
    KINDS = ("commit", "reveal", "validate", "transfer")

    def __init__(self, *args: Any, kind: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind or self.KINDS[int(self.rng.integers(len(self.KINDS)))]

    def outgoing(self, message: Message, to: str) -> Message | None:
        if message.kind == self.kind and to in self.targets:
            return None
        return message


class Crash(Deviation):
    """Fall silent from a phase on, as a crashed provider does."""

    name = "crash"
    PHASES = ("commit", "reveal", "validate", "transfer")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.from_phase = int(self.rng.integers(len(self.PHASES)))

    def outgoing(self, message: Message, to: str) -> Message | None:
        phase = self.PHASES.index(message.kind) if message.kind in self.PHASES else 4
        return None if phase >= self.from_phase else message


class WrongTaskResult(Deviation):
    """Compute a task, then hand on a wrong result."""

    name = "wrong-task-result"

    def task_result(self, task: str, value: Any) -> Any:
        return perturb_value(value, self.rng)


class EquivocateTransfer(Deviation):
    """Send a corrupted task result to some targets and the right one to the others."""

    name = "equivocate-transfer"

    def outgoing(self, message: Message, to: str) -> Message | None:
        half = isinstance(message, Transfer) and to in self.targets
        if half and sorted(self.targets).index(to) % 2 == 0:
            return dataclasses.replace(message, value=flip_byte(message.value, self.rng))
        return message


class CoinMismatch(Deviation):
    """Reveal a coin share that does not open the commitment (after seeing nothing better
    to do: the classic attempt to steer a commit-reveal coin)."""

    name = "coin-mismatch"

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Reveal) and to in self.targets:
            return dataclasses.replace(message, coin_share=self.rng.bytes(32))
        return message


class CoinLate(Deviation):
    """Hold the reveal back past the phase deadline (a late reveal)."""

    name = "coin-late"

    def delay(self, message: Message, to: str) -> float:
        if isinstance(message, Reveal) and to in self.targets:
            return 1.5 * self.params.phase_timeout
        return 0.0


class CoinFixed(Deviation):
    """Commit to a constant coin share instead of a uniform one (the protocol cannot tell;
    the coin stays uniform as long as one share is)."""

    name = "coin-fixed"

    def coin_share(self, share: bytes) -> bytes:
        return bytes(32)


class FalseAbort(Deviation):
    """Announce ⊥ instead of revealing (or of validating the input, when that runs)."""

    name = "false-abort"

    def outgoing(self, message: Message, to: str) -> Message | None:
        if isinstance(message, Reveal | Validate) and to in self.targets:
            return Abort(message.round, "I say so")
        return message


class SlowButOnTime(Deviation):
    """Delay every message by a fraction of the phase timeout: annoying, not harmful."""

    name = "slow-on-time"

    def delay(self, message: Message, to: str) -> float:
        return 0.3 * self.params.phase_timeout


class Forge(Deviation):
    """Besides its honest messages, send frames that must be dropped: a message signed as
    another provider, garbage, an unknown kind, a wrong version, an oversized body."""

    name = "forge"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fake_key = Keypair(self.rng.bytes(32))

    def junk(self, message: Message, to: str) -> list[list[bytes]]:
        victims = [p for p in self.params.providers if p not in (self.me, to)]
        frames: list[list[bytes]] = [[b"garbage"], [b"{", b"", b"x" * 64]]
        if victims:  # the same message, claimed by someone else, signed with a wrong key
            frames.append(encode(message, victims[0], self.fake_key))
        header = json.dumps({"v": 2, "kind": message.kind, "round": message.round}).encode()
        frames.append([header, b"", bytes(64)])
        unknown = json.dumps(
            {"v": 1, "kind": "gossip", "round": message.round, "from": self.me, "meta": {}}
        ).encode()
        frames.append([unknown, b"", bytes(64)])
        if self.params.max_message_bytes <= 4 * 1024 * 1024:  # keep simulations light
            frames.append([b"{}", bytes(self.params.max_message_bytes + 1), bytes(64)])
        return frames if isinstance(message, Commit) else frames[:3]


Signer = Callable[[Message], list[bytes]]


class OpenRoundEarly(Deviation):
    """Open the round alone, before any client bids, and run it on no bids: the deviator's
    commitment reaches the honest providers first. Were a round to open at the first
    message naming it, they would close bidding a bid window later with nothing, agree on
    the empty market and deliver its outcome while the clients' bids arrive late.

    Sealed opening: the deviator's own node lets a sybil client of its own open and close
    its round at once. Schedule: its clock runs ahead, so it closes bidding before the
    clients bid (a batch of its sybil opens the round at its node)."""

    name = "open-round-early"
    bids_delay = 1.5  # the clients bid after a bid window would have closed the round

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sybil = Keypair(self.rng.bytes(32))
        self.sealing_clients = (self.sybil.public,)
        self.clock_skew = 0.9 * self.params.bid_window

    def before_bids(self, round_id: int, sign: Signer) -> list[tuple[str, list[bytes]]]:
        empty = BidBatch(round_id, BidVector.empty(), final=True)
        return [(self.me, encode(empty, self.sybil.public, self.sybil))]


class EmptyBatchOpens(Deviation):
    """As a client of its own (any key will do), send every provider an empty final batch
    for the round before the real clients bid: the attempt to open the round, and start
    its bid window, on nobody's bids."""

    name = "empty-batch-opens"
    bids_delay = 1.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sybil = Keypair(self.rng.bytes(32))

    def before_bids(self, round_id: int, sign: Signer) -> list[tuple[str, list[bytes]]]:
        frames = encode(
            BidBatch(round_id, BidVector.empty(), final=True), self.sybil.public, self.sybil
        )
        return [(p, frames) for p in self.params.providers]


class FloodRounds(Deviation):
    """Just before the clients bid, name `ROUNDS` future rounds at every other provider:
    signed commitments as a provider, and empty batches as a client of its own. The
    attempt to fill the providers' tables of open rounds so that they refuse the real
    round ("too-many-rounds")."""

    name = "flood-rounds"
    ROUNDS = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sybil = Keypair(self.rng.bytes(32))

    def before_bids(self, round_id: int, sign: Signer) -> list[tuple[str, list[bytes]]]:
        out = []
        for ahead in range(1, self.ROUNDS + 1):
            r = round_id + ahead
            commit = sign(Commit(r, self.rng.bytes(32), self.rng.bytes(32), self.rng.bytes(32)))
            batch = encode(BidBatch(r, BidVector.empty()), self.sybil.public, self.sybil)
            out += [(p, frames) for p in self.targets for frames in (commit, batch)]
        return out


CATALOGUE: tuple[type[Deviation], ...] = (
    LieBids,
    EquivocateReport,
    EquivocateReveal,
    SwapFullReport,
    EquivocateCommitments,
    LieValidate,
    Withhold,
    Crash,
    WrongTaskResult,
    EquivocateTransfer,
    CoinMismatch,
    CoinLate,
    CoinFixed,
    FalseAbort,
    SlowButOnTime,
    Forge,
    OpenRoundEarly,
    EmptyBatchOpens,
    FloodRounds,
)


def by_name(name: str) -> type[Deviation]:
    for cls in CATALOGUE:
        if cls.name == name:
            return cls
    raise KeyError(name)
