"""Common coin (seed 003, Property 4): all providers output the same random number, drawn
from a distribution Π they all input, and no coalition of at most k < m providers can bias it.

Commit-reveal, as in the seed (after Abraham, Dolev and Halpern, its ref. [19]):

1. every provider j draws r_j uniformly from [0, 2^256) and sends H(round, j, r_j, salt_j);
2. once it holds all m commitments, it reveals (r_j, salt_j);
3. a reveal that does not open its commitment, or one that does not arrive before the
   phase deadline (a late reveal), makes the provider output ⊥; otherwise the coin is
   R = (Σ_j r_j) mod 2^256: the seed's "sum of the numbers modulo 1", on 256-bit integers.

If one provider outside the coalition draws r_j uniformly, R is uniform whatever the others
chose, because adding a fixed number modulo 2^256 is a bijection; and the coalition fixes its
numbers (by committing) before it sees r_j. Its only choice after seeing the honest reveals
is to withhold its own, which gives ⊥ (utility 0), never a different coin.

`uniform(R)` maps R to u in [0, 1) (its top 53 bits, the resolution of a float64), and
`draw(Π, R)` maps u to Π by the inverse CDF: any object with a `ppf` method (a frozen
scipy.stats distribution, or the small ones here) or a plain callable u -> value.
`generator(R)` seeds a numpy Generator for mechanisms that need a stream of numbers.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mercat.errors import InvalidParameterError

COIN_BYTES = 32
MODULUS = 1 << (8 * COIN_BYTES)


def draw_share(rng: np.random.Generator | None = None) -> bytes:
    """A provider's secret share r_j: 32 uniform bytes (the OS's CSPRNG unless a seeded
    Generator is given, for reproducible simulations)."""
    if rng is None:
        return secrets.token_bytes(COIN_BYTES)
    return rng.bytes(COIN_BYTES)


def coin_commitment(round_id: int, sender: str, share: bytes, salt: bytes) -> bytes:
    """H(round, sender, r_j, salt): hides r_j until the reveal, then binds to it."""
    h = hashlib.sha256(b"mercat/coin-commitment/1")
    h.update(round_id.to_bytes(8, "little", signed=True))
    h.update(sender.encode() + b"\x00")
    h.update(share)
    h.update(salt)
    return h.digest()


def opens(commitment: bytes, round_id: int, sender: str, share: bytes, salt: bytes) -> bool:
    return len(share) == COIN_BYTES and coin_commitment(round_id, sender, share, salt) == commitment


def combine(shares: Sequence[bytes]) -> int:
    """R = Σ r_j mod 2^256 (shares read as little-endian integers)."""
    total = 0
    for share in shares:
        if len(share) != COIN_BYTES:
            raise InvalidParameterError(f"a coin share is {COIN_BYTES} bytes, got {len(share)}")
        total += int.from_bytes(share, "little")
    return total % MODULUS


def uniform(value: int) -> float:
    """u in [0, 1) from R: its top 53 bits over 2^53."""
    return (value >> (8 * COIN_BYTES - 53)) / float(1 << 53)


def generator(value: int) -> np.random.Generator:
    """A numpy Generator seeded with all 256 bits of R."""
    return np.random.default_rng(
        [(value >> (64 * i)) & 0xFFFFFFFFFFFFFFFF for i in range(COIN_BYTES // 8)]
    )


def mechanism_seed(value: int) -> int:
    """A 63-bit integer seed for `Mechanism.clear(market, seed=...)`."""
    return value & ((1 << 63) - 1)


class Distribution(Protocol):
    """Π: anything with an inverse CDF (scipy.stats frozen distributions qualify)."""

    def ppf(self, u: float) -> Any: ...


@dataclass(frozen=True)
class Uniform:
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise InvalidParameterError(f"Uniform needs finite low < high, got {self}")

    def ppf(self, u: float) -> float:
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class Categorical:
    """Index i with probability weights[i] / Σ weights."""

    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InvalidParameterError("Categorical weights must be finite, >= 0, non-empty")
        if w.sum() <= 0:
            raise InvalidParameterError("Categorical weights must not all be zero")

    def ppf(self, u: float) -> int:
        cumulative = np.cumsum(np.asarray(self.weights, dtype=float))
        index = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
        return min(index, len(self.weights) - 1)


def draw(distribution: Distribution | Callable[[float], Any], value: int) -> Any:
    """Π(R): the inverse CDF of Π at u = uniform(R)."""
    u = uniform(value)
    if hasattr(distribution, "ppf"):
        return distribution.ppf(u)
    if callable(distribution):
        return distribution(u)
    raise InvalidParameterError(f"a distribution needs a ppf method, got {distribution!r}")
