"""The storage latency model of seed 002, eq. 1, fitted to measurements and used for placement.

    T_r = S / B_r,        T_w = S / B_w + T_c                                   (eq. 1)

S is the size of the data, B_r and B_w the read and write bandwidths, T_c the consensus
overhead a replicated platform adds to every write. The seed uses the model to "plan resource
placement and access strategies"; `place` ranks storage platforms for an object by the time
its expected reads and writes would take.

The seed gives no numbers for B_r, B_w or T_c (its Fig. 2 is an image). `fit_profile`
estimates them from measured times (`measure_profile` measures a `ContentStore`), and reports
how well the straight lines of eq. 1 fit: a platform whose time is not linear in S is not
described by eq. 1, and the R² says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError


@dataclass(frozen=True)
class StorageProfile:
    """One platform in eq. 1's terms: bandwidths in bytes per second, T_c in seconds."""

    name: str
    read_bandwidth: float
    write_bandwidth: float
    consensus_overhead: float = 0.0

    def __post_init__(self) -> None:
        for field in ("read_bandwidth", "write_bandwidth"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and value > 0 and not math.isnan(value)):
                raise InvalidParameterError(f"{field} must be > 0 bytes/s, got {value!r}")
        t_c = self.consensus_overhead
        if not (isinstance(t_c, int | float) and math.isfinite(t_c) and t_c >= 0):
            raise InvalidParameterError(f"consensus overhead must be >= 0 s, got {t_c!r}")

    def read_seconds(self, size: float) -> float:
        return _size(size) / self.read_bandwidth

    def write_seconds(self, size: float) -> float:
        return _size(size) / self.write_bandwidth + self.consensus_overhead


def _size(size: float) -> float:
    if not (isinstance(size, int | float) and math.isfinite(size) and size >= 0):
        raise InvalidParameterError(f"size must be a finite number of bytes >= 0, got {size!r}")
    return float(size)


@dataclass(frozen=True)
class Placement:
    profile: StorageProfile
    seconds: float  # reads × T_r + writes × T_w


def place(
    size: float, reads: float, writes: float, profiles: Sequence[StorageProfile]
) -> list[Placement]:
    """Platforms ranked by the time `writes` writes and `reads` reads of an object of `size`
    bytes take under eq. 1, fastest first (ties keep the given order)."""
    if not profiles:
        raise InvalidParameterError("place needs at least one storage profile")
    for name, count in (("reads", reads), ("writes", writes)):
        if not (isinstance(count, int | float) and math.isfinite(count) and count >= 0):
            raise InvalidParameterError(f"{name} must be a finite number >= 0, got {count!r}")
    ranked = [
        Placement(p, reads * p.read_seconds(size) + writes * p.write_seconds(size))
        for p in profiles
    ]
    return sorted(ranked, key=lambda placement: placement.seconds)


@dataclass(frozen=True)
class Fit:
    profile: StorageProfile
    read_r2: float
    write_r2: float


def _r2(observed: np.ndarray, predicted: np.ndarray) -> float:
    spread = float(np.sum((observed - observed.mean()) ** 2))
    residual = float(np.sum((observed - predicted) ** 2))
    return 1.0 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)


def fit_profile(
    name: str, sizes: Sequence[float], read_seconds: Sequence[float], write_seconds: Sequence[float]
) -> Fit:
    """Least-squares eq. 1 through measured (size, time) points: T_r through the origin, T_w
    with intercept T_c (clamped at 0: a negative overhead would be noise, so the line is then
    refitted through the origin)."""
    s = np.asarray(sizes, dtype=float)
    r = np.asarray(read_seconds, dtype=float)
    w = np.asarray(write_seconds, dtype=float)
    if not (len(s) == len(r) == len(w)) or len(s) < 2:
        raise InvalidParameterError("fit_profile needs >= 2 points, as many times as sizes")
    if len(np.unique(s)) < 2 or np.any(s <= 0) or np.any(r <= 0) or np.any(w <= 0):
        raise InvalidParameterError("sizes must be > 0 with >= 2 distinct, times > 0")
    read_slope = float(s @ r / (s @ s))
    write_slope, overhead = np.polyfit(s, w, 1)
    if write_slope <= 0:
        raise InvalidParameterError(
            "write times do not grow with size, so eq. 1 has no bandwidth to fit; measure "
            "larger objects (fixed costs and noise dominate small ones)"
        )
    if overhead < 0:
        write_slope, overhead = float(s @ w / (s @ s)), 0.0
    profile = StorageProfile(name, 1.0 / read_slope, 1.0 / float(write_slope), float(overhead))
    return Fit(
        profile,
        _r2(r, read_slope * s),
        _r2(w, float(write_slope) * s + overhead),
    )


MAX_MEASURE_SIZE = 2 * 10**9  # each object is held in memory twice (written, read back)


def check_measure(sizes: Sequence[int], repeats: int) -> list[int]:
    """The sizes `measure_profile` can measure, checked before anything is written: whole
    bytes, each in [1, 2 GB], at least two distinct (eq. 1 needs two to fit a line)."""
    check.integer("repeats", repeats, 1)
    checked = []
    for size in sizes:
        size = check.integer("object size (whole bytes)", size, 1)
        if size > MAX_MEASURE_SIZE:
            raise InvalidParameterError(
                f"object size {size} bytes is above the {MAX_MEASURE_SIZE // 10**9} GB "
                "measure takes (each object is held in memory twice)"
            )
        checked.append(size)
    if len(set(checked)) < 2:
        raise InvalidParameterError(
            f"measure needs at least 2 distinct object sizes to fit eq. 1, got {list(sizes)!r}"
        )
    return checked


def measure_profile(
    store,
    sizes: Sequence[int],
    repeats: int = 3,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
):
    """Time `store.put` and `store.get` (which re-hashes every block) on fresh random content
    of each size, `repeats` times; returns (sizes, read_seconds, write_seconds), one point per
    repeat. Content is new each time, so no write is saved by deduplication; reads come from
    the page cache, as they would for a provider serving a model it just stored. Sizes and
    repeats are checked (`check_measure`) before the first write; `progress(1)` follows
    each object."""
    sizes = check_measure(sizes, repeats)
    rng = np.random.default_rng(seed)
    points: tuple[list[int], list[float], list[float]] = ([], [], [])
    for size in sizes:
        for _ in range(repeats):
            data = rng.bytes(size)
            start = time.perf_counter()
            cid = store.put(data)
            wrote = time.perf_counter() - start
            start = time.perf_counter()
            back = store.get(cid)
            read = time.perf_counter() - start
            if back != data:  # pragma: no cover - the store verifies every block
                raise AssertionError("store returned other bytes")
            points[0].append(size)
            points[1].append(read)
            points[2].append(wrote)
            if progress is not None:
                progress(1)
    return points
