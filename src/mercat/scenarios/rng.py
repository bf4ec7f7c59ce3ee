"""The random numbers of the collective simulator, written once in plain Python.

Both simulation engines draw from xoshiro256** (Blackman & Vigna), one independent stream
per run, in exactly the same order, so that the readable engine and the compiled one
produce the same runs event for event. This module is the readable twin; the compiled
twin lives in `collective_fast.py` and a test holds the two streams equal.

- `next_u64`: xoshiro256** output (64 bits).
- `uniform`: the top 53 bits scaled to [0, 1).
- `below(n)`: an exactly uniform integer in [0, n) by Lemire's multiply-shift method on 32-bit
  draws, rejecting the few values that would bias it.

Streams are seeded from numpy's SeedSequence: run r of root seed s uses the state
SeedSequence(s, spawn_key=(1, r)).generate_state(4, uint64), derived for many runs at once
by `seed_sequence.spawned_states` (compiled; a test holds it to numpy's word for word);
shared draws of a whole experiment (the failure-rate pool) use spawn_key (0,).
"""

from __future__ import annotations

import numpy as np

from mercat.scenarios.seed_sequence import spawned_states

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
TWO_POW_MINUS_53 = 1.0 / (1 << 53)


def run_states(seed: int, runs: int, first_run: int = 0) -> np.ndarray:
    """xoshiro states for runs first_run .. first_run+runs-1 of root `seed`, shape (runs, 4):
    SeedSequence(seed, spawn_key=(1, r)).generate_state(4, uint64), computed for all runs at
    once (`seed_sequence.spawned_states`, which a test holds equal to numpy's)."""
    states = spawned_states(seed, 1, first_run, runs, 4)
    # xoshiro's one forbidden state; SeedSequence never yields it
    states[~states.any(axis=1), 0] = 1
    return states


def shared_generator(seed: int) -> np.random.Generator:
    """numpy Generator for draws shared by all runs of an experiment (the Fa pool)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


class Xoshiro256:
    """xoshiro256** on Python integers: slow, obvious, the reference."""

    def __init__(self, state: np.ndarray | list[int]) -> None:
        self.s = [int(v) for v in state]
        if len(self.s) != 4 or not any(self.s):
            raise ValueError("xoshiro256 needs four 64-bit words, not all zero")

    def next_u64(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) * TWO_POW_MINUS_53

    def below(self, n: int) -> int:
        """An exactly uniform integer in [0, n), 1 ≤ n < 2^32."""
        m = (self.next_u64() >> 32) * n
        low = m & MASK32
        if low < n:
            threshold = ((1 << 32) - n) % n
            while low < threshold:
                m = (self.next_u64() >> 32) * n
                low = m & MASK32
        return m >> 32
