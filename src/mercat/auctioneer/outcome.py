"""The allocator's output (x, p) as arrays, with a canonical encoding.

Bidders are indexed by their position in the agreed bid vector (sorted ids). The allocation
x is a list of rows (buyer, seller, amount): `amount` units of the buyer's demand served by
the seller. `transfers[i]` is what bidder i pays (negative: what it receives). `facts` holds
the mechanism's scalars (prices, welfare), JSON numbers only.

Two providers' outputs are the same exactly when their encodings are: that is how providers
compare task results (data transfer) and how a client compares the m results it receives.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.errors import MalformedMessageError
from mercat.market.model import Allocation, Clearing
from mercat.untrusted import parse_json

Fact = float | int | str | bool | None


@dataclass(frozen=True, eq=False)
class Outcome:
    mechanism: str
    bidders: tuple[str, ...]
    buyer: np.ndarray  # (rows,) int64 index into bidders
    seller: np.ndarray  # (rows,) int64 index into bidders
    amount: np.ndarray  # (rows,) float64 units
    transfers: np.ndarray  # (len(bidders),) float64, > 0 pays
    facts: dict[str, Fact] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in (
            ("buyer", np.int64),
            ("seller", np.int64),
            ("amount", np.float64),
            ("transfers", np.float64),
        ):
            array = np.array(getattr(self, name), dtype=dtype)  # a private copy
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "facts", {k: _fact(v) for k, v in sorted(self.facts.items())})
        rows = len(self.buyer)
        if len(self.seller) != rows or len(self.amount) != rows:
            raise MalformedMessageError("allocation rows differ in length")
        if len(self.transfers) != len(self.bidders):
            raise MalformedMessageError("one transfer per bidder is needed")
        n = len(self.bidders)
        for column in (self.buyer, self.seller):
            if rows and (column.min() < 0 or column.max() >= n):
                raise MalformedMessageError("an allocation row names an unknown bidder")

    def __repr__(self) -> str:  # short: arrays of 10^4 entries make useless reprs
        return (
            f"Outcome({self.mechanism}, {len(self.bidders)} bidders, {len(self.buyer)} rows, "
            f"digest {self.digest().hex()[:12]})"
        )

    # --- equality by encoding -----------------------------------------------------------

    def encode(self) -> bytes:
        header = json.dumps(
            {
                "mechanism": self.mechanism,
                "bidders": len(self.bidders),
                "rows": len(self.buyer),
                "facts": self.facts,
            },
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        ).encode()
        ids = "\n".join(self.bidders).encode()
        parts = [
            header,
            ids,
            self.buyer.astype("<i8").tobytes(),
            self.seller.astype("<i8").tobytes(),
            self.amount.astype("<f8").tobytes(),
            self.transfers.astype("<f8").tobytes(),
        ]
        sizes = b"".join(len(p).to_bytes(8, "little") for p in parts)
        return b"OUT1" + sizes + b"".join(parts)

    def digest(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.digest())

    @classmethod
    def decode(cls, data: bytes) -> Outcome:
        if data[:4] != b"OUT1" or len(data) < 4 + 6 * 8:
            raise MalformedMessageError("not an encoded outcome")
        sizes = [int.from_bytes(data[4 + 8 * i : 12 + 8 * i], "little") for i in range(6)]
        if 4 + 48 + sum(sizes) != len(data):
            raise MalformedMessageError("outcome sections do not add up")
        cuts = [52]
        for s in sizes:
            cuts.append(cuts[-1] + s)
        header_b, ids_b, buyer_b, seller_b, amount_b, transfers_b = (
            data[a:b] for a, b in itertools.pairwise(cuts)
        )
        header = parse_json(
            header_b, what="outcome header", error=MalformedMessageError, max_bytes=None
        )
        try:
            mechanism, n, rows, facts = (
                header["mechanism"],
                header["bidders"],
                header["rows"],
                header["facts"],
            )
            ids = tuple(ids_b.decode().split("\n")) if n else ()
            arrays = [
                np.frombuffer(buyer_b, "<i8"),
                np.frombuffer(seller_b, "<i8"),
                np.frombuffer(amount_b, "<f8"),
                np.frombuffer(transfers_b, "<f8"),
            ]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise MalformedMessageError(f"bad outcome: {exc}") from None
        if len(ids) != n or len(arrays[0]) != rows or not isinstance(facts, dict):
            raise MalformedMessageError("outcome header does not match its arrays")
        return cls(str(mechanism), ids, *arrays, facts=facts)

    # --- views --------------------------------------------------------------------------

    def to_clearing(self, bids: BidVector) -> Clearing:
        """The outcome as a `mercat.market.model.Clearing` over the market of `bids` (shares are
        fractions of each buyer's quantity; payments for buyers, rewards for sellers that
        appear in the allocation)."""
        if bids.ids != self.bidders:
            raise MalformedMessageError("the bids are not the ones this outcome was computed on")
        ids, quantity = self.bidders, bids.quantity
        shares = tuple(
            (ids[b], ids[s], float(a) / float(quantity[b]))
            for b, s, a in zip(
                self.buyer.tolist(), self.seller.tolist(), self.amount.tolist(), strict=True
            )
        )
        traded_buyers = sorted(set(self.buyer.tolist()))
        traded_sellers = sorted(set(self.seller.tolist()))
        payments = {ids[i]: float(self.transfers[i]) for i in traded_buyers if bids.side[i] == BUY}
        rewards = {
            ids[j]: -float(self.transfers[j]) for j in traded_sellers if bids.side[j] == SELL
        }
        return Clearing(self.mechanism, Allocation(shares), payments, rewards)

    def payments(self) -> dict[str, float]:
        """Every non-zero transfer by bidder id (what a bidder pays; negative: receives)."""
        return {self.bidders[i]: float(t) for i, t in enumerate(self.transfers.tolist()) if t != 0}


def _fact(value: Any) -> Fact:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise MalformedMessageError(f"an outcome fact must be a JSON scalar, got {value!r}")
