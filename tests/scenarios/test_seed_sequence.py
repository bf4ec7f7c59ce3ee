"""`seed_sequence.spawned_states` is numpy's SeedSequence, word for word (numpy is the
readable twin), and the engines' per-run states are what their docs say."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.scenarios import collective_gpu, rng
from mercat.scenarios.seed_sequence import spawned_states, uint32_words


def numpy_states(seed, key, first_run, runs, n_words):
    return np.array(
        [
            np.random.SeedSequence(seed, spawn_key=(key, r)).generate_state(n_words, np.uint64)
            for r in range(first_run, first_run + runs)
        ],
        dtype=np.uint64,
    ).reshape(runs, n_words)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**200)),
    key=st.integers(0, 2**40),
    first_run=st.one_of(st.integers(0, 1000), st.integers(0, 2**40)),
    runs=st.integers(0, 12),
    n_words=st.integers(1, 5),
)
def test_spawned_states_are_numpys(seed, key, first_run, runs, n_words):
    got = spawned_states(seed, key, first_run, runs, n_words)
    assert got.dtype == np.uint64 and got.shape == (runs, n_words)
    assert np.array_equal(got, numpy_states(seed, key, first_run, runs, n_words))


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**64 - 1, 2**128 + 3, 2**160])
def test_seeds_of_every_length_and_runs_past_32_bits(seed):
    """Seeds of one to six 32-bit words (numpy pads shorter ones to its pool of four, and
    mixes longer ones in after it), and run numbers on both sides of 2^32."""
    for first_run in (0, 2**32 - 2):
        got = spawned_states(seed, 2, first_run, 4, 2)
        assert np.array_equal(got, numpy_states(seed, 2, first_run, 4, 2))


def test_the_engines_states_are_their_spawn_keys():
    fast = rng.run_states(11, 5, first_run=3)
    assert np.array_equal(fast, numpy_states(11, 1, 3, 5, 4))
    gpu = collective_gpu.gpu_states(11, 5, first_run=3)
    words = numpy_states(11, 2, 3, 5, 2)
    assert np.array_equal(gpu["s0"], words[:, 0]) and np.array_equal(gpu["s1"], words[:, 1])


def test_a_negative_seed_is_refused_as_numpy_refuses_it():
    with pytest.raises(ValueError, match="non-negative"):
        uint32_words(-1)
    with pytest.raises(ValueError):
        np.random.SeedSequence(-1)
