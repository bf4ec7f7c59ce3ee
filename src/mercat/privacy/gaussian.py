"""The privacy-preserving gradient: seed 002's eq. 4 and Alg. 1, with the clipping they need.

Eq. 4 releases Δθ' = Δθ + N(0, σ²) (one independent draw per coordinate). On its own that is
no guarantee: a gradient can be arbitrarily large, so no σ hides it. The Gaussian mechanism's
guarantee needs a bound Δ on how far one participant can move what is released (its L2
sensitivity), which federated learning gets by clipping each update to L2 norm at most C
(Abadi et al. 2016; McMahan et al. 2018). So Alg. 1 here is: clip, then add N(0, (z·C)²),
where z is the noise multiplier the accountant (`mercat.privacy.accountant`) reasons about.
"""

from __future__ import annotations

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError


def _check_clip_norm(clip_norm: float) -> None:
    check.positive("clip norm", clip_norm)


def _check_update(update: np.ndarray) -> np.ndarray:
    array = np.asarray(update, dtype=float)
    if array.ndim == 0 or array.size == 0:
        raise InvalidParameterError("an update must be a non-empty vector")
    if not np.all(np.isfinite(array)):
        raise InvalidParameterError("an update holds NaN or infinite values")
    return array


def clip(update: np.ndarray, clip_norm: float) -> np.ndarray:
    """Scale `update` down to L2 norm `clip_norm` if it is longer; shorter updates pass as they
    are. After clipping, adding or removing one participant moves a sum by at most C."""
    _check_clip_norm(clip_norm)
    array = _check_update(update)
    norm = float(np.linalg.norm(array))
    return array if norm <= clip_norm else array * (clip_norm / norm)


def clip_rows(updates: np.ndarray, clip_norm: float) -> np.ndarray:
    """`clip` applied to every row of a 2-D array at once (one update per participant)."""
    _check_clip_norm(clip_norm)
    array = _check_update(updates)
    if array.ndim != 2:
        raise InvalidParameterError(f"expected one update per row (2-D), got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    long = norms > clip_norm
    return np.where(long, array * (clip_norm / np.where(long, norms, 1.0)), array)


def privatize(
    update: np.ndarray, noise_multiplier: float, clip_norm: float, rng: np.random.Generator
) -> np.ndarray:
    """Alg. 1: Δθ' = clip(Δθ, C) + N(0, σ²) with σ = z·C, one draw per coordinate.

    The release is the Gaussian mechanism with sensitivity C (add or remove one participant)
    and noise multiplier z; `mercat.privacy.accountant` says what it spends."""
    check.non_negative("noise multiplier", noise_multiplier)
    clipped = clip(update, clip_norm)
    return clipped + rng.normal(0.0, noise_multiplier * clip_norm, size=clipped.shape)
