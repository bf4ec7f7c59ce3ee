"""Protocol parameters and the peers file.

`ProtocolParams` holds what every executing provider must agree on (the providers in order,
k, the mechanism, the number of payment groups, the bid-agreement rule) and the local
timeouts. Providers exchange a digest of the agreed part in their first message, so two
providers started with different parameters end the round in ⊥ rather than compute
different things.

The peers file (TOML) lists the providers and the auction:

    [auction]
    mechanism = "double"          # or "vcg"
    k = 1
    groups = 0                    # VCG payment groups; 0 = as many as fit: m // (k+1)
    rule = "value"                # bid agreement: "value" or "bitwise" (the seed's)
    tie_break = "index"           # double auction: equal bids by "index" or by the "coin"
    vcg_gap = 0.0                 # VCG: 0 proves optima; > 0 accepts that relative gap
    opening = "schedule"          # rounds open by the clock, or "sealed" (sealing_clients)
    schedule_start = 1767225600.0 # schedule: Unix time round 0 opens
    round_seconds = 10.0          # schedule: round r opens at start + r * round_seconds
    clock_tolerance = 0.5         # schedule: how far the providers' clocks may disagree
    bid_window = 2.0              # seconds a round accepts bids after it opens
    phase_timeout = 5.0           # seconds to wait for the peers in each phase
    task_timeout = 120.0          # seconds for the allocator's tasks and transfers
    max_message_bytes = 67108864
    sealing_clients = []          # sealed: client keys that open a round and close it

    [bidders]                     # optional: who may bid under which label
    alice = "…64 hex digits…"     # only this client key's bids count for "alice"

    [[provider]]
    id = "p1"
    address = "tcp://127.0.0.1:5601"
    public_key = "…64 hex digits…"
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mercat.auctioneer.bid_agreement import RULES
from mercat.auctioneer.messages import CLIENT_KEY, DEFAULT_MAX_BYTES, PROVIDER_ID
from mercat.auctioneer.opening import Schedule
from mercat.errors import AuctioneerConfigError
from mercat.untrusted import parse_toml, read_text

MAX_PEERS_BYTES = 4 << 20
"""A peers file lists providers and perhaps thousands of bidders: 4 MiB is far beyond that."""

MECHANISMS = ("double", "vcg")
TIE_BREAKS = ("index", "coin")
OPENINGS = ("schedule", "sealed")
"""How rounds open (`mercat.auctioneer.opening`): by the clock, or by the sealing clients."""


@dataclass(frozen=True)
class ProtocolParams:
    providers: tuple[str, ...]
    k: int
    mechanism: str = "double"
    groups: int = 0
    rule: str = "value"
    vcg_gap: float = 0.0
    tie_break: str = "index"
    opening: str = "schedule"
    schedule_start: float = 0.0
    round_seconds: float = 10.0
    clock_tolerance: float = 0.5
    bid_window: float = 2.0
    phase_timeout: float = 5.0
    task_timeout: float = 120.0
    max_message_bytes: int = DEFAULT_MAX_BYTES
    max_bids: int = 200_000
    max_open_rounds: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", tuple(self.providers))
        m, k = len(self.providers), self.k
        if m == 0:
            raise AuctioneerConfigError("at least one provider must execute the protocol")
        bad = [p for p in self.providers if not isinstance(p, str) or not PROVIDER_ID.fullmatch(p)]
        if bad:
            raise AuctioneerConfigError(
                f"provider ids are 1-32 characters of [A-Za-z0-9_.-], got {bad[0]!r}"
            )
        if len(set(self.providers)) != m:
            raise AuctioneerConfigError(f"duplicate provider id in {list(self.providers)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise AuctioneerConfigError(f"k must be an integer >= 0, got {k!r}")
        if m <= 2 * k:
            raise AuctioneerConfigError(
                f"m = {m} providers cannot resist coalitions of k = {k}: the protocol needs "
                f"m > 2k (at least {2 * k + 1} providers)"
            )
        if self.mechanism not in MECHANISMS:
            raise AuctioneerConfigError(
                f"unknown mechanism {self.mechanism!r}; known: {', '.join(MECHANISMS)}"
            )
        if self.rule not in RULES:
            raise AuctioneerConfigError(f"unknown rule {self.rule!r}; known: {', '.join(RULES)}")
        if self.tie_break not in TIE_BREAKS:
            raise AuctioneerConfigError(
                f"unknown tie_break {self.tie_break!r}; known: {', '.join(TIE_BREAKS)}"
            )
        if self.tie_break == "coin" and self.mechanism != "double":
            raise AuctioneerConfigError(
                "tie_break = 'coin' applies to the double auction only (the VCG core's "
                "optimum does not depend on the order of the bids)"
            )
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 0:
            raise AuctioneerConfigError(f"groups must be an integer >= 0, got {self.groups!r}")
        if self.groups > m // (k + 1):
            raise AuctioneerConfigError(
                f"{self.groups} groups of at least k+1 = {k + 1} providers need "
                f"{self.groups * (k + 1)} providers; there are {m}"
            )
        gap = self.vcg_gap
        if isinstance(gap, bool) or not isinstance(gap, int | float) or not 0 <= gap < 1:
            raise AuctioneerConfigError(
                f"vcg_gap must be a relative gap in [0, 1) (0: proven optima), got {gap!r}"
            )
        for name in ("bid_window", "phase_timeout", "task_timeout", "round_seconds"):
            value = getattr(self, name)
            if not _seconds(value) or value <= 0:
                raise AuctioneerConfigError(
                    f"{name} must be a number of seconds > 0, got {value!r}"
                )
        for name in ("max_message_bytes", "max_bids", "max_open_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AuctioneerConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self._check_opening()

    def _check_opening(self) -> None:
        if self.opening not in OPENINGS:
            raise AuctioneerConfigError(
                f"unknown opening {self.opening!r}; known: {', '.join(OPENINGS)}"
            )
        if not _seconds(self.schedule_start) or self.schedule_start < 0:
            raise AuctioneerConfigError(
                f"schedule_start must be a Unix time >= 0, got {self.schedule_start!r}"
            )
        if not _seconds(self.clock_tolerance) or self.clock_tolerance < 0:
            raise AuctioneerConfigError(
                f"clock_tolerance must be a number of seconds >= 0, got {self.clock_tolerance!r}"
            )
        if self.opening != "schedule":
            return
        if self.clock_tolerance > self.round_seconds / 2:
            raise AuctioneerConfigError(
                f"clock_tolerance {self.clock_tolerance!r} s is more than half of round_seconds "
                f"{self.round_seconds!r} s: clocks that far apart cannot tell rounds apart"
            )
        if self.bid_window > self.round_seconds:
            raise AuctioneerConfigError(
                f"bid_window {self.bid_window!r} s is longer than round_seconds "
                f"{self.round_seconds!r} s: a round's bidding must end before the next opens"
            )
        live = Schedule.of(self).live_rounds()
        if live > self.max_open_rounds:
            raise AuctioneerConfigError(
                f"the schedule lets up to {live} rounds open at once, more than "
                f"max_open_rounds = {self.max_open_rounds}"
            )

    @property
    def m(self) -> int:
        return len(self.providers)

    @property
    def payment_groups(self) -> int:
        """c: the number of groups the VCG payments are split across."""
        return self.groups or self.m // (self.k + 1)

    def digest(self) -> bytes:
        """What must be equal at every provider (timeouts are local and left out)."""
        agreed = {
            "providers": list(self.providers),
            "k": self.k,
            "mechanism": self.mechanism,
            "groups": self.payment_groups,
            "rule": self.rule,
            "vcg_gap": float(self.vcg_gap),
            "tie_break": self.tie_break,
            "opening": self.opening,
        }
        if self.opening == "schedule":  # when rounds take bids must agree too
            agreed["schedule"] = [
                float(self.schedule_start),
                float(self.round_seconds),
                float(self.bid_window),
            ]
        return hashlib.sha256(json.dumps(agreed, sort_keys=True).encode()).digest()

    def with_(self, **changes: Any) -> ProtocolParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class Peer:
    id: str
    address: str
    public_key: str


@dataclass(frozen=True)
class PeersFile:
    params: ProtocolParams
    peers: tuple[Peer, ...]
    sealing_clients: tuple[str, ...] = field(default=())
    bidders: tuple[tuple[str, str], ...] = field(default=())  # (label, client key)

    def bidder_keys(self) -> dict[str, str] | None:
        """Label -> the one client key that may bid under it; None: no registry (any client
        may bid under any label)."""
        return dict(self.bidders) if self.bidders else None

    def peer(self, provider_id: str) -> Peer:
        for p in self.peers:
            if p.id == provider_id:
                return p
        raise AuctioneerConfigError(
            f"provider {provider_id!r} is not in the peers file; known: "
            f"{', '.join(p.id for p in self.peers)}"
        )

    def keys(self) -> dict[str, str]:
        return {p.id: p.public_key for p in self.peers}

    def addresses(self) -> dict[str, str]:
        return {p.id: p.address for p in self.peers}


_AUCTION_KEYS = {
    "mechanism",
    "k",
    "groups",
    "rule",
    "vcg_gap",
    "tie_break",
    "opening",
    "schedule_start",
    "round_seconds",
    "clock_tolerance",
    "bid_window",
    "phase_timeout",
    "task_timeout",
    "max_message_bytes",
    "max_bids",
    "max_open_rounds",
    "sealing_clients",
}


def load_peers(path: Path, *, k: int | None = None) -> PeersFile:
    """Read and check a peers file; `k` (the CLI's --k) overrides the file's."""
    if not Path(path).exists():
        raise AuctioneerConfigError(f"peers file {path} does not exist")
    what = f"peers file {path}"
    text = read_text(path, what=what, error=AuctioneerConfigError, max_bytes=MAX_PEERS_BYTES)
    data = parse_toml(text, what=what, error=AuctioneerConfigError, max_bytes=MAX_PEERS_BYTES)
    unknown = set(data) - {"auction", "provider", "bidders"}
    if unknown:
        raise AuctioneerConfigError(f"{path}: unknown sections {sorted(unknown)}")
    auction = data.get("auction", {})
    rows = data.get("provider", [])
    if not isinstance(auction, dict) or not isinstance(rows, list) or not rows:
        raise AuctioneerConfigError(f"{path}: needs an [auction] table and [[provider]] entries")
    extra = set(auction) - _AUCTION_KEYS
    if extra:
        raise AuctioneerConfigError(f"{path}: unknown [auction] keys {sorted(extra)}")
    peers = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != {"id", "address", "public_key"}:
            raise AuctioneerConfigError(
                f"{path}: provider #{i + 1} needs exactly id, address and public_key"
            )
        if not isinstance(row["address"], str) or not row["address"].startswith("tcp://"):
            raise AuctioneerConfigError(
                f"{path}: provider {row['id']!r} address must be tcp://HOST:PORT"
            )
        if not isinstance(row["public_key"], str) or not CLIENT_KEY.fullmatch(row["public_key"]):
            raise AuctioneerConfigError(
                f"{path}: provider {row['id']!r} public_key must be 64 lowercase hex digits"
            )
        peers.append(Peer(row["id"], row["address"], row["public_key"]))
    options = {key: auction[key] for key in auction if key != "sealing_clients"}
    if k is not None:
        options["k"] = k
    if "k" not in options:
        raise AuctioneerConfigError(f"{path}: give k in [auction] or with --k")
    params = ProtocolParams(providers=tuple(p.id for p in peers), **options)
    sealing = auction.get("sealing_clients", [])
    if not isinstance(sealing, list) or not all(
        isinstance(s, str) and CLIENT_KEY.fullmatch(s) for s in sealing
    ):
        raise AuctioneerConfigError(f"{path}: sealing_clients must list 64-hex-digit keys")
    check_sealing(params, sealing, path)
    bidders = data.get("bidders", {})
    if not isinstance(bidders, dict):
        raise AuctioneerConfigError(f"{path}: [bidders] must be a table of label = client key")
    for label, key in bidders.items():
        if not isinstance(key, str) or not CLIENT_KEY.fullmatch(key):
            raise AuctioneerConfigError(
                f"{path}: bidder {label!r} needs a client key of 64 lowercase hex digits"
            )
    return PeersFile(params, tuple(peers), tuple(sealing), tuple(sorted(bidders.items())))


def dump_peers(peers: PeersFile) -> str:
    """The TOML text of a peers file (what `load_peers` reads back)."""
    p = peers.params
    lines = [
        "[auction]",
        f'mechanism = "{p.mechanism}"',
        f"k = {p.k}",
        f"groups = {p.groups}",
        f'rule = "{p.rule}"',
        f"vcg_gap = {float(p.vcg_gap)!r}",
        f'tie_break = "{p.tie_break}"',
        f'opening = "{p.opening}"',
        f"schedule_start = {float(p.schedule_start)!r}",
        f"round_seconds = {float(p.round_seconds)!r}",
        f"clock_tolerance = {float(p.clock_tolerance)!r}",
        f"bid_window = {float(p.bid_window)!r}",
        f"phase_timeout = {float(p.phase_timeout)!r}",
        f"task_timeout = {float(p.task_timeout)!r}",
        f"max_message_bytes = {p.max_message_bytes}",
        f"max_bids = {p.max_bids}",
        f"max_open_rounds = {p.max_open_rounds}",
        "sealing_clients = [" + ", ".join(f'"{s}"' for s in peers.sealing_clients) + "]",
        "",
    ]
    if peers.bidders:
        # Labels are TOML keys: JSON quoting is valid TOML for any label.
        lines += [
            "[bidders]",
            *(f'{json.dumps(label, ensure_ascii=False)} = "{key}"' for label, key in peers.bidders),
        ]
        lines.append("")
    for peer in peers.peers:
        lines += [
            "[[provider]]",
            f'id = "{peer.id}"',
            f'address = "{peer.address}"',
            f'public_key = "{peer.public_key}"',
            "",
        ]
    return "\n".join(lines)


def _seconds(value: object) -> bool:
    """A finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_sealing(params: ProtocolParams, sealing: object, where: object) -> None:
    """Sealing clients open and close rounds: the "sealed" opening needs them, the schedule
    refuses them (there, only the clock closes a round)."""
    if params.opening == "sealed" and not sealing:
        raise AuctioneerConfigError(
            f"{where}: opening = 'sealed' needs sealing_clients (the client keys that open "
            "and close each round)"
        )
    if params.opening == "schedule" and sealing:
        raise AuctioneerConfigError(
            f"{where}: sealing_clients open and close rounds, which the schedule does by the "
            "clock: set opening = 'sealed' to use them, or remove them"
        )
