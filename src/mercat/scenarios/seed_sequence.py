"""numpy's SeedSequence for many runs at once: the per-run states of the collective engines.

Run r of root seed s starts its stream at `SeedSequence(s, spawn_key=(k, r)).generate_state(
n, uint64)` (k = 1 for the fast engine's xoshiro256**, 2 for the gpu engine's xoroshiro128+;
`rng.py`). numpy derives one such state in about 11 µs of Python, 1.1 s for 10^5 runs: a
fifth of the gpu engine's whole `simulate` of 10^5 runs on an H200, and seconds before a
sweep of 10^6 runs starts. `spawned_states` computes the same words for a range of runs
in compiled code; numpy's SeedSequence itself is the readable twin, and
`tests/scenarios/test_seed_sequence.py` holds the two equal.

The algorithm is O'Neill's seed_seq_fe, as numpy's `bit_generator.pyx` writes it: the
entropy (the root seed's 32-bit words, little-endian, padded with zeros to the pool of 4
words since a spawn key follows, then the key's words) is hashed into the pool word by
word with a running multiplier, the pool words are mixed with each other, and the state
is the pool read cyclically through a second hash. All arithmetic is modulo 2^32; it is
done here in uint64 and masked.
"""

from __future__ import annotations

import numba as nb
import numpy as np

POOL_SIZE = 4
_M32 = np.uint64(0xFFFFFFFF)
_INIT_A = np.uint64(0x43B0D7E5)
_MULT_A = np.uint64(0x931E8875)
_INIT_B = np.uint64(0x8B51F9DD)
_MULT_B = np.uint64(0x58F38DED)
_MIX_MULT_L = np.uint64(0xCA01F9DD)
_MIX_MULT_R = np.uint64(0x4973F715)
_XSHIFT = np.uint64(16)
_U32 = np.uint64(32)


def uint32_words(value: int) -> list[int]:
    """A non-negative integer as numpy's SeedSequence reads it: 32-bit words, least
    significant first, at least one."""
    if value < 0:
        raise ValueError(f"a seed is a non-negative integer, got {value}")
    words = []
    while True:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            return words


@nb.njit(cache=True)
def _mix(x, y):
    result = ((_MIX_MULT_L * x) - (_MIX_MULT_R * y)) & _M32
    return result ^ (result >> _XSHIFT)


@nb.njit(cache=True)
def _hash(value, const, mult):
    """numpy's hashmix: `value` hashed with the running multiplier `const`, and the
    multiplier's next value."""
    const_next = (const * mult) & _M32
    value = ((value ^ const) * const_next) & _M32
    return value ^ (value >> _XSHIFT), const_next


@nb.njit(cache=True)
def _spawned(prefix, first_run, runs, n_words, out):
    entropy = np.empty(prefix.size + 2, dtype=np.uint64)
    entropy[: prefix.size] = prefix
    pool = np.empty(POOL_SIZE, dtype=np.uint64)
    for i in range(runs):
        run = np.uint64(first_run + i)
        size = prefix.size
        entropy[size] = run & _M32  # the run's words, as uint32_words writes them
        size += 1
        if run >> _U32:
            entropy[size] = run >> _U32
            size += 1
        # mix_entropy: hash each word in, one running multiplier for every hash
        const = _INIT_A
        for j in range(POOL_SIZE):
            pool[j], const = _hash(entropy[j] if j < size else np.uint64(0), const, _MULT_A)
        for src in range(POOL_SIZE):
            for dst in range(POOL_SIZE):
                if src != dst:
                    hashed, const = _hash(pool[src], const, _MULT_A)
                    pool[dst] = _mix(pool[dst], hashed)
        for src in range(POOL_SIZE, size):
            for dst in range(POOL_SIZE):
                hashed, const = _hash(entropy[src], const, _MULT_A)
                pool[dst] = _mix(pool[dst], hashed)
        # generate_state: the pool read cyclically through the second hash, two uint32
        # words (low first) to each uint64
        const = _INIT_B
        for k in range(2 * n_words):
            value, const = _hash(pool[k % POOL_SIZE], const, _MULT_B)
            if k % 2 == 0:
                out[i, k // 2] = value
            else:
                out[i, k // 2] |= value << _U32


def spawned_states(seed: int, key: int, first_run: int, runs: int, n_words: int) -> np.ndarray:
    """`SeedSequence(seed, spawn_key=(key, r)).generate_state(n_words, np.uint64)` for r in
    first_run .. first_run+runs-1, shape (runs, n_words)."""
    if first_run < 0 or runs < 0 or first_run + runs > 1 << 64:
        raise ValueError(f"runs {first_run}..{first_run + runs - 1} are not 64-bit run numbers")
    words = uint32_words(int(seed))
    words += [0] * (POOL_SIZE - len(words))  # numpy pads the seed when a spawn key follows
    prefix = np.array(words + uint32_words(int(key)), dtype=np.uint64)
    out = np.empty((runs, n_words), dtype=np.uint64)
    _spawned(prefix, first_run, runs, n_words, out)
    return out


__all__ = ["POOL_SIZE", "spawned_states", "uint32_words"]
