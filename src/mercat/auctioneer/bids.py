"""Bids and bid vectors: what a bidder submits, and what a provider holds for one round.

A bid names its bidder, a side (a user buys, a provider sells), a price per unit and a
quantity: seed 003's users bid a value per unit of bandwidth for a demand; its double
auction's providers ask a cost per unit for a capacity; in the standard auction providers
do not bid, and their sell bids carry only a capacity (the price is ignored).

A *bid vector* is a set of bids sorted by bidder id, one bid per bidder, held as numpy arrays
so that 10^4 bids encode, hash and compare in microseconds. A bidder with no bid in a vector
has the neutral bid ⊥ (it takes no part in the auction).

Encoding (inside a signed message body): the ids joined by newlines (UTF-8), then sides
(uint8), prices and quantities (little-endian float64). The encoding is canonical, so two
vectors are equal exactly when their encodings (and digests) are.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mercat.errors import InvalidParameterError, MalformedMessageError
from mercat.market.model import MAX_AMOUNT

BUY, SELL = 0, 1
SIDES = {"buy": BUY, "sell": SELL}
SIDE_NAMES = {BUY: "buy", SELL: "sell"}
Side = Literal["buy", "sell"]

ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@/+-]{1,64}")
"""Bidder ids: 1-64 characters, no spaces or newlines (they separate ids in the encoding)."""
_ID_LINES = re.compile(r"[A-Za-z0-9_.:@/+-]{1,64}(?:\n[A-Za-z0-9_.:@/+-]{1,64})*")


def bid_problem(side: int, price: float, quantity: float) -> str | None:
    """Why a bid is invalid (None when it is valid): the rule every provider applies."""
    if side not in (BUY, SELL):
        return f"side must be buy or sell, got {side!r}"
    if not (math.isfinite(price) and price >= 0):
        return f"price must be finite and >= 0, got {price!r}"
    if not (math.isfinite(quantity) and quantity > 0):
        return f"quantity must be finite and > 0, got {quantity!r}"
    # The market model's bound on amounts: one absurd bid must not overflow the allocator's
    # sums and take the whole round down; it is ⊥ (excluded) instead.
    if price > MAX_AMOUNT or quantity > MAX_AMOUNT or price * quantity > MAX_AMOUNT:
        return (
            f"price, quantity and price × quantity must be at most {MAX_AMOUNT:g}, "
            f"got {price!r} × {quantity!r}"
        )
    return None


@dataclass(frozen=True)
class Bid:
    """One bid: `price` per unit for `quantity` units, bought (users) or sold (providers)."""

    bidder: str
    side: Side
    price: float
    quantity: float

    def __post_init__(self) -> None:
        if not isinstance(self.bidder, str) or not ID_PATTERN.fullmatch(self.bidder):
            raise InvalidParameterError(
                f"bidder id must be 1-64 characters of [A-Za-z0-9_.:@/+-], got {self.bidder!r}"
            )
        if self.side not in SIDES:
            raise InvalidParameterError(f"side must be 'buy' or 'sell', got {self.side!r}")
        problem = bid_problem(SIDES[self.side], float(self.price), float(self.quantity))
        if problem:
            raise InvalidParameterError(f"bid of {self.bidder!r}: {problem}")

    @classmethod
    def parse(cls, text: str) -> Bid:
        """`ID:buy:PRICE:QUANTITY` or `ID:sell:PRICE:QUANTITY` (the CLI's form)."""
        parts = text.strip().split(":")
        if len(parts) != 4:
            raise InvalidParameterError(
                f"a bid reads ID:buy|sell:PRICE:QUANTITY (e.g. u7:buy:1.1:0.5), got {text!r}"
            )
        bidder, side, price, quantity = parts
        try:
            return cls(bidder, side, float(price), float(quantity))  # type: ignore[arg-type]
        except ValueError as exc:
            if isinstance(exc, InvalidParameterError):
                raise
            raise InvalidParameterError(f"price and quantity must be numbers in {text!r}") from None


class BidVector:
    """Bids sorted by bidder id (unique), as read-only arrays; compare with `==` (by digest)."""

    __slots__ = ("_digest", "_encoded", "ids", "price", "quantity", "side")

    def __init__(
        self, ids: Sequence[str], side: np.ndarray, price: np.ndarray, quantity: np.ndarray
    ) -> None:
        """Trusted constructor: ids sorted and unique, arrays of matching length."""
        self.ids: tuple[str, ...] = tuple(ids)
        self.side = _frozen(np.asarray(side, dtype=np.uint8))
        self.price = _frozen(np.asarray(price, dtype="<f8"))
        self.quantity = _frozen(np.asarray(quantity, dtype="<f8"))
        if not (len(self.ids) == len(self.side) == len(self.price) == len(self.quantity)):
            raise MalformedMessageError("a bid vector's arrays differ in length")
        self._encoded: tuple[bytes, bytes, bytes, bytes] | None = None
        self._digest: bytes | None = None

    # --- construction -------------------------------------------------------------------

    @classmethod
    def empty(cls) -> BidVector:
        return cls((), np.zeros(0, np.uint8), np.zeros(0), np.zeros(0))

    @classmethod
    def from_bids(cls, bids: Iterable[Bid]) -> BidVector:
        """Sorted by id; a second bid for one bidder raises InvalidParameterError."""
        by_id: dict[str, Bid] = {}
        for bid in bids:
            if bid.bidder in by_id:
                raise InvalidParameterError(f"two bids for bidder {bid.bidder!r}")
            by_id[bid.bidder] = bid
        ordered = [by_id[i] for i in sorted(by_id)]
        return cls(
            [b.bidder for b in ordered],
            np.array([SIDES[b.side] for b in ordered], dtype=np.uint8),
            np.array([b.price for b in ordered], dtype=float),
            np.array([b.quantity for b in ordered], dtype=float),
        )

    @classmethod
    def from_arrays(
        cls,
        ids: Sequence[str],
        side: np.ndarray,
        price: np.ndarray,
        quantity: np.ndarray,
    ) -> BidVector:
        """Sort by id (ids must be unique and well formed)."""
        id_list = list(ids)
        for bidder in id_list:
            if not ID_PATTERN.fullmatch(bidder):
                raise InvalidParameterError(f"bad bidder id {bidder!r}")
        order = sorted(range(len(id_list)), key=id_list.__getitem__)
        sorted_ids = [id_list[i] for i in order]
        if any(a == b for a, b in itertools.pairwise(sorted_ids)):
            raise InvalidParameterError("bidder ids must be unique")
        index = np.asarray(order, dtype=np.int64)
        return cls(
            sorted_ids,
            np.asarray(side, np.uint8)[index],
            np.asarray(price, float)[index],
            np.asarray(quantity, float)[index],
        )

    # --- views --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BidVector) and self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return f"BidVector({len(self)} bids, digest {self.digest().hex()[:12]})"

    def bids(self) -> list[Bid]:
        return [
            Bid(i, SIDE_NAMES[int(s)], float(p), float(q))  # type: ignore[arg-type]
            for i, s, p, q in zip(
                self.ids,
                self.side.tolist(),
                self.price.tolist(),
                self.quantity.tolist(),
                strict=True,
            )
        ]

    def get(self, bidder: str) -> Bid | None:
        position = _position(self.ids, bidder)
        if position is None:
            return None
        return Bid(
            bidder,
            SIDE_NAMES[int(self.side[position])],  # type: ignore[arg-type]
            float(self.price[position]),
            float(self.quantity[position]),
        )

    def take(self, mask: np.ndarray) -> BidVector:
        """The bids where `mask` is true (order kept)."""
        keep = np.flatnonzero(mask)
        return BidVector(
            [self.ids[i] for i in keep.tolist()],
            self.side[keep],
            self.price[keep],
            self.quantity[keep],
        )

    def valid_mask(self) -> np.ndarray:
        """True where a bid is valid (`bid_problem` is None), vectorised."""
        p, q = self.price, self.quantity
        with np.errstate(invalid="ignore", over="ignore"):
            sane = (self.side <= SELL) & np.isfinite(p) & (p >= 0) & np.isfinite(q) & (q > 0)
            return sane & (p <= MAX_AMOUNT) & (q <= MAX_AMOUNT) & (p * q <= MAX_AMOUNT)

    def valid(self) -> BidVector:
        """The vector with invalid bids replaced by ⊥ (removed)."""
        mask = self.valid_mask()
        return self if mask.all() else self.take(mask)

    # --- encoding -----------------------------------------------------------------------

    def sections(self) -> tuple[bytes, bytes, bytes, bytes]:
        """(ids, side, price, quantity) bytes: the canonical encoding."""
        if self._encoded is None:
            self._encoded = (
                "\n".join(self.ids).encode("utf-8"),
                self.side.tobytes(),
                self.price.tobytes(),
                self.quantity.tobytes(),
            )
        return self._encoded

    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding (with the count, so sections cannot shift)."""
        if self._digest is None:
            h = hashlib.sha256(b"mercat/bid-vector/1")
            h.update(len(self).to_bytes(8, "little"))
            for part in self.sections():
                h.update(len(part).to_bytes(8, "little"))
                h.update(part)
            self._digest = h.digest()
        return self._digest

    @classmethod
    def decode(cls, ids: bytes, side: bytes, price: bytes, quantity: bytes) -> BidVector:
        """Inverse of `sections`; MalformedMessageError on any structural problem (values
        are not judged here: an invalid bid inside a well-formed vector is ⊥, not an error)."""
        count = len(side)
        if len(price) != 8 * count or len(quantity) != 8 * count:
            raise MalformedMessageError("bid vector sections have inconsistent lengths")
        try:
            text = ids.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessageError("bidder ids are not UTF-8") from None
        if count == 0:
            if ids:
                raise MalformedMessageError("bidder ids given for an empty vector")
            return cls.empty()
        # One regular-expression pass over the whole text checks every id (10^4 ids in
        # about 1 ms less than one match per id).
        if not _ID_LINES.fullmatch(text):
            raise MalformedMessageError("bidder ids must be 1-64 characters of [A-Za-z0-9_.:@/+-]")
        id_list = text.split("\n")
        if len(id_list) != count:
            raise MalformedMessageError(f"{len(id_list)} bidder ids for {count} bids")
        if id_list != sorted(id_list) or len(set(id_list)) != count:
            raise MalformedMessageError("bidder ids must be sorted and unique")
        return cls(
            id_list,
            np.frombuffer(side, dtype=np.uint8),
            np.frombuffer(price, dtype="<f8"),
            np.frombuffer(quantity, dtype="<f8"),
        )

    # --- the per-bidder words the majority rules compare ----------------------------------

    def words(self) -> np.ndarray:
        """(n, 3) uint64: [flags (bit 0 present, bit 1 sell), price bits, quantity bits]."""
        out = np.empty((len(self), 3), dtype=np.uint64)
        out[:, 0] = 1 | (self.side.astype(np.uint64) << np.uint64(1))
        out[:, 1] = self.price.view(np.uint64)
        out[:, 2] = self.quantity.view(np.uint64)
        return out

    @classmethod
    def from_words(cls, ids: Sequence[str], words: np.ndarray) -> BidVector:
        """Inverse of `words` for the rows whose flags say 'present' with a known side;
        other rows (⊥, or flags no bid has) are dropped."""
        flags = words[:, 0]
        present = (flags == 1) | (flags == 3)
        keep = np.flatnonzero(present)
        return cls(
            [ids[i] for i in keep.tolist()],
            (flags[keep] >> np.uint64(1)).astype(np.uint8),
            words[keep, 1].copy().view("<f8"),
            words[keep, 2].copy().view("<f8"),
        )


def merge_ids(vectors: Sequence[BidVector]) -> tuple[str, ...]:
    """The sorted union of the vectors' bidder ids (fast when they all hold the same ids)."""
    if not vectors:
        return ()
    first = vectors[0].ids
    if all(v.ids == first for v in vectors[1:]):
        return first
    return tuple(sorted(set().union(*(v.ids for v in vectors))))


def _position(ids: tuple[str, ...], bidder: str) -> int | None:
    lo, hi = 0, len(ids)
    while lo < hi:  # binary search: ids are sorted
        mid = (lo + hi) // 2
        if ids[mid] < bidder:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(ids) and ids[lo] == bidder else None


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only array; a writeable one is copied first, so the caller's stays writeable."""
    if array.flags.writeable:
        array = array.copy()
        array.setflags(write=False)
    return array
