"""Alg. 1: clipping bounds the sensitivity, and the noise has the stated scale."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from mercat.errors import InvalidParameterError
from mercat.privacy.gaussian import clip, clip_rows, privatize

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(update=arrays(float, st.integers(1, 30), elements=finite), c=st.floats(1e-3, 1e3))
def test_clipping_bounds_the_norm_and_keeps_the_direction(update, c):
    clipped = clip(update, c)
    norm = np.linalg.norm(update)
    assert np.linalg.norm(clipped) <= c * (1 + 1e-12)
    if norm <= c:
        assert np.array_equal(clipped, update)
    else:
        assert np.allclose(clipped * norm / c, update, rtol=1e-9, atol=1e-9 * norm)


@settings(max_examples=50, deadline=None)
@given(
    updates=arrays(float, st.tuples(st.integers(1, 8), st.integers(1, 12)), elements=finite),
    c=st.floats(1e-3, 1e3),
)
def test_clip_rows_is_clip_on_every_row(updates, c):
    rows = clip_rows(updates, c)
    for row, original in zip(rows, updates, strict=True):
        assert np.allclose(row, clip(original, c), rtol=1e-12, atol=0)


def test_the_noise_is_gaussian_with_standard_deviation_z_times_c():
    rng = np.random.default_rng(7)
    update = np.full(20_000, 1e-3)  # norm 0.14 < C: passes unclipped
    noisy = privatize(update, noise_multiplier=1.5, clip_norm=2.0, rng=rng)
    noise = noisy - update
    assert stats.kstest(noise / 3.0, "norm").pvalue > 0.01
    assert np.std(noise) == pytest.approx(3.0, rel=0.03)


def test_zero_noise_releases_the_clipped_update():
    update = np.array([3.0, 4.0])
    out = privatize(update, 0.0, 1.0, np.random.default_rng(0))
    assert np.allclose(out, [0.6, 0.8])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clip(np.array([1.0, np.nan]), 1.0), "NaN"),
        (lambda: clip(np.array([]), 1.0), "non-empty"),
        (lambda: clip(np.array([1.0]), 0.0), "clip norm"),
        (lambda: clip_rows(np.ones(3), 1.0), "2-D"),
        (lambda: privatize(np.ones(3), -1.0, 1.0, np.random.default_rng(0)), "noise multiplier"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(InvalidParameterError, match=message):
        call()
