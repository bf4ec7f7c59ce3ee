"""Deviation trials: coalitions of at most k providers against the protocol, counted.

For every mechanism, every m in {3, 5, 8} and every k with m > 2k, and every deviation of
the catalogue (`mercat.auctioneer.deviations`), a trial draws a market, a coalition of 1..k
providers, and runs one round in process (virtual clock). It is classified by what the
providers *outside* the coalition output:

- honest:       all of them output exactly the outcome of the trusted auctioneer;
- bottom:       all of them output ⊥;
- mixed:        some output the honest outcome, the others ⊥ (the outcome is ⊥);
- manipulated:  one of them output anything else. The claim is that this never happens.

Every bidder is consistent here, so the honest outcome is A on the bids the bidders sent.
Half of the trials add a bid-lying member to the coalition, so that the reports differ and
the full-report and input-validation phases run too. Half of the trials open rounds by the
schedule and half by a sealing client (`mercat.auctioneer.opening`): the attacks on when a
round takes bids (`open-round-early`, `empty-batch-opens`, `flood-rounds`) meet both rules.
A provider outside the coalition that never runs the round counts as ⊥ (its client sees
none).

"double-coin" is the double auction whose ties the common coin breaks (`tie_break =
"coin"`), on prices rounded to quarters so that ties decide who trades. A is then
randomized, and the honest outcome is A on the bids the bidders sent *with the coin R the
round produced*: the coalition may have chosen its own shares, but it committed to them
before any honest share was revealed, so R is uniform whatever it chose (the KS tests of
`tests/auctioneer/test_common_coin.py` check that), and the claim is that the outcome is
A(b, R) or ⊥. Honest providers that deliver with different coins count as manipulated.

`run_bidder_trials` checks Definition 1 with bidders that send different bids to different
providers (or none to some): an honest provider's output must be ⊥, or A on a vector that
holds every consistent bidder's bid exactly and, for the others, one of the bids they sent
or ⊥ (under the "value" rule; any valid bid under "bitwise").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.common_coin import mechanism_seed
from mercat.auctioneer.config import OPENINGS, ProtocolParams
from mercat.auctioneer.deviations import CATALOGUE, Deviation, LieBids
from mercat.auctioneer.instances import instance_for
from mercat.auctioneer.messages import Message
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.round import Behavior
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.workloads import bids_for
from mercat.errors import AuctioneerConfigError

CONFIGS = ((3, 1), (5, 1), (5, 2), (8, 1), (8, 2), (8, 3))
"""Every (m, k) with m in {3, 5, 8} and m > 2k."""
MECHANISMS = ("double", "vcg", "double-coin")
"""The trials' auctions: the two of the seed, and the double auction with coin tie-breaks."""


@dataclass
class Tally:
    honest: int = 0
    bottom: int = 0
    mixed: int = 0
    manipulated: int = 0

    @property
    def trials(self) -> int:
        return self.honest + self.bottom + self.mixed + self.manipulated

    def add(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    def merge(self, other: Tally) -> None:
        for kind in ("honest", "bottom", "mixed", "manipulated"):
            setattr(self, kind, getattr(self, kind) + getattr(other, kind))

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "trials": self.trials}


class Combined(Behavior):
    """Several deviations at one provider: hooks applied in turn."""

    def __init__(self, *parts: Behavior) -> None:
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.clock_skew = max(p.clock_skew for p in parts)
        self.sealing_clients = tuple(key for p in parts for key in p.sealing_clients)

    def before_bids(
        self, round_id: int, sign: Callable[[Message], list[bytes]]
    ) -> list[tuple[str, list[bytes]]]:
        return [frames for part in self.parts for frames in part.before_bids(round_id, sign)]

    def report_for(self, peer: str, received: BidVector) -> BidVector:
        for part in self.parts:
            received = part.report_for(peer, received)
        return received

    def coin_share(self, share: bytes) -> bytes:
        for part in self.parts:
            share = part.coin_share(share)
        return share

    def outgoing(self, message: Message, to: str) -> Message | None:
        current: Message | None = message
        for part in self.parts:
            if current is None:
                return None
            current = part.outgoing(current, to)
        return current

    def delay(self, message: Message, to: str) -> float:
        return max(part.delay(message, to) for part in self.parts)

    def task_result(self, task: str, value: Any) -> Any:
        for part in self.parts:
            value = part.task_result(task, value)
        return value

    def junk(self, message: Message, to: str) -> list[list[bytes]]:
        return [frames for part in self.parts for frames in part.junk(message, to)]


def classify(outputs: dict[str, Any], honest: Sequence[str], expected: Outcome | None) -> str:
    """`expected` None: the honest providers that delivered disagree on the coin."""
    outcomes = [outputs[p].outcome for p in honest]
    if any(o is not None and o != expected for o in outcomes):
        return "manipulated"
    delivered = sum(o is not None for o in outcomes)
    if delivered == len(outcomes):
        return "honest"
    return "bottom" if delivered == 0 else "mixed"


def trial_params(
    mechanism: str, m: int, k: int, rule: str = "value", opening: str = "sealed"
) -> ProtocolParams:
    if mechanism not in MECHANISMS:
        raise AuctioneerConfigError(
            f"unknown mechanism {mechanism!r}; known: {', '.join(MECHANISMS)}"
        )
    coin = mechanism == "double-coin"
    return ProtocolParams(
        providers=tuple(f"p{i}" for i in range(m)),
        k=k,
        mechanism="double" if coin else mechanism,
        tie_break="coin" if coin else "index",
        rule=rule,
        opening=opening,
        round_seconds=4.0,
        bid_window=1.0,
        phase_timeout=2.0,  # longer than the bid window, as by default (2 s and 5 s)
        task_timeout=30.0,
        max_message_bytes=1 << 20,
    )


def coalition_trial(
    mechanism: str,
    m: int,
    k: int,
    deviation: type[Deviation] | None,
    rng: np.random.Generator,
    *,
    n_users: int,
    n_sellers: int,
    rule: str = "value",
) -> tuple[str, list[str]]:
    """One trial; returns (its class, the coalition's deviations)."""
    params = trial_params(mechanism, m, k, rule, str(rng.choice(OPENINGS)))
    bids = bids_for(params.mechanism, int(rng.integers(2**31)), n_users, n_sellers)
    if params.tie_break == "coin":  # prices on a grid of quarters: ties decide who trades
        bids = BidVector(bids.ids, bids.side, np.round(bids.price * 4) / 4, bids.quantity)
    instance = instance_for(params.mechanism)
    size = int(rng.integers(1, k + 1))
    members = [str(p) for p in rng.choice(params.providers, size=size, replace=False)]
    plan = int(rng.integers(2**31))
    behaviors: dict[str, Behavior] = {}
    names = []
    for member in members:
        cls = deviation or CATALOGUE[int(rng.integers(len(CATALOGUE)))]
        member_rng = np.random.default_rng(rng.integers(2**63))
        behavior: Behavior = cls(params, member, member_rng, plan=plan)
        names.append(cls.name)
        behaviors[member] = behavior
    if rng.random() < 0.5:  # make the reports differ: the 2b and 3 phases run too
        liar = members[0]
        behaviors[liar] = Combined(
            LieBids(params, liar, np.random.default_rng(plan), plan=plan), behaviors[liar]
        )
        names.append("lie-bids")
    [simulated] = simulate_rounds(
        params,
        [bids],
        behaviors=behaviors,
        seed=int(rng.integers(2**31)),
        cache={},
        bids_delay=bids_delay(params, behaviors.values()),
    )
    honest = [p for p in params.providers if p not in behaviors]
    # The honest outcome is A(b, R) with the coin R the honest providers delivered with
    # (deterministic auctions ignore R); providers that disagree on R count as manipulated.
    coins = {simulated.outputs[p].coin or 0 for p in honest if simulated.outputs[p].ok}
    expected: Outcome | None = None
    if len(coins) <= 1:
        coin = coins.pop() if coins else 0
        expected = instance.centralized(bids, mechanism_seed(coin), params)
    return classify(simulated.outputs, honest, expected), names


def bids_delay(params: ProtocolParams, behaviors: Iterable[Behavior]) -> float:
    """When the clients bid: sealed, as late after the coalition's `before_bids` frames as
    its members ask (`Deviation.bids_delay`, in bid windows); by the schedule, halfway
    through the round's window."""
    if params.opening == "schedule":
        return 0.5 * params.bid_window
    windows = max((getattr(b, "bids_delay", 0.0) for b in behaviors), default=0.0)
    return windows * params.bid_window


def run_coalition_trials(
    trials: int,
    *,
    mechanisms: Iterable[str] = MECHANISMS,
    configs: Iterable[tuple[int, int]] = CONFIGS,
    deviations: Sequence[type[Deviation] | None] = (*CATALOGUE, None),
    seed: int = 0,
    n_users: int = 12,
    n_sellers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[str, int, int, str], Tally]:
    """`trials` trials per (mechanism, m, k, deviation); None in `deviations` stands for a
    coalition whose members pick their deviations at random ("mixed")."""
    rng = np.random.default_rng(seed)
    tallies: dict[tuple[str, int, int, str], Tally] = {}
    for mechanism in mechanisms:
        for m, k in configs:
            for deviation in deviations:
                key = (mechanism, m, k, deviation.name if deviation else "mixed")
                tally = tallies.setdefault(key, Tally())
                for _ in range(trials):
                    kind, _names = coalition_trial(
                        mechanism, m, k, deviation, rng, n_users=n_users, n_sellers=n_sellers
                    )
                    tally.add(kind)
                    if progress is not None:
                        progress(1)
    return tallies


# --- Definition 1 with inconsistent bidders ---------------------------------------------


def inconsistent_bids(
    bids: BidVector, providers: Sequence[str], share: float, rng: np.random.Generator
) -> tuple[dict[str, BidVector], dict[str, set[tuple[int, float, float]]]]:
    """Per provider, the bids it receives: a `share` of bidders send each provider one of
    three variants of their bid, or nothing. Returns the vectors and, per inconsistent
    bidder, the set of (side, price, quantity) it sent."""
    n = len(bids)
    liars = np.flatnonzero(rng.random(n) < share)
    variants = {
        int(i): [
            (int(bids.side[i]), float(bids.price[i]) * f, float(bids.quantity[i]))
            for f in (1.0, 0.9, 1.1)
        ]
        for i in liars
    }
    sent: dict[str, set[tuple[int, float, float]]] = {bids.ids[i]: set() for i in variants}
    vectors = {}
    for p in providers:
        side, price, quantity = bids.side.copy(), bids.price.copy(), bids.quantity.copy()
        keep = np.ones(n, dtype=bool)
        for i, options in variants.items():
            pick = int(rng.integers(len(options) + 1))
            if pick == len(options):
                keep[i] = False  # nothing to this provider
                continue
            side[i], price[i], quantity[i] = options[pick]
            sent[bids.ids[i]].add(options[pick])
        vectors[p] = BidVector(bids.ids, side, price, quantity).take(keep)
    return vectors, sent


def definition1_holds(
    agreed: BidVector,
    bids: BidVector,
    sent: dict[str, set[tuple[int, float, float]]],
    rule: str,
) -> bool:
    """The agreed vector keeps every consistent bidder's bid and gives each inconsistent
    one a bid it sent or ⊥ ("value"), or any valid bid or ⊥ ("bitwise")."""
    for bid in bids.bids():
        if bid.bidder in sent:
            continue
        if agreed.get(bid.bidder) != bid:
            return False
    for bidder, options in sent.items():
        got = agreed.get(bidder)
        if got is None or rule == "bitwise":
            continue
        entry = (0 if got.side == "buy" else 1, got.price, got.quantity)
        if entry not in options:
            return False
    extra = set(agreed.ids) - set(bids.ids)
    return not extra and bool(agreed.valid_mask().all())


def run_bidder_trials(
    trials: int,
    *,
    mechanism: str = "double",
    configs: Iterable[tuple[int, int]] = CONFIGS,
    rule: str = "value",
    share: float = 0.3,
    with_coalition: bool = True,
    seed: int = 0,
    n_users: int = 12,
    n_sellers: int = 4,
) -> dict[tuple[int, int], dict[str, int]]:
    """Trials with inconsistent bidders (and, if asked, a coalition that lies about bids).
    Counts per (m, k): trials, outcomes delivered, and violations of Definition 1."""
    rng = np.random.default_rng(seed)
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for m, k in configs:
        c = counts.setdefault((m, k), {"trials": 0, "delivered": 0, "violations": 0})
        for _ in range(trials):
            params = trial_params(mechanism, m, k, rule, str(rng.choice(OPENINGS)))
            instance = instance_for(params.mechanism)
            bids = bids_for(params.mechanism, int(rng.integers(2**31)), n_users, n_sellers)
            vectors, sent = inconsistent_bids(bids, params.providers, share, rng)
            behaviors: dict[str, Behavior] = {}
            if with_coalition and rng.random() < 0.5:
                size = int(rng.integers(1, k + 1))
                plan = int(rng.integers(2**31))
                for member in rng.choice(params.providers, size=size, replace=False):
                    behaviors[str(member)] = LieBids(
                        params, str(member), np.random.default_rng(plan), plan=plan
                    )
            [simulated] = simulate_rounds(
                params,
                [vectors],
                behaviors=behaviors,
                seed=int(rng.integers(2**31)),
                cache={},
                bids_delay=bids_delay(params, behaviors.values()),
            )
            honest = [p for p in params.providers if p not in behaviors]
            c["trials"] += 1
            results = [simulated.outputs[p] for p in honest]
            delivered = [r for r in results if r.ok]
            ok = (
                all(
                    r.agreed is not None
                    and definition1_holds(r.agreed, bids, sent, rule)
                    and r.outcome
                    == instance.centralized(r.agreed, mechanism_seed(r.coin or 0), params)
                    for r in delivered
                )
                and len({r.outcome.digest() for r in delivered if r.outcome}) <= 1
            )
            c["delivered"] += int(len(delivered) == len(results))
            c["violations"] += int(not ok)
    return counts
