"""Readable twins of the vectorized gradients in `mercat.workloads.learning`: one example at
a time, the textbook formulas written out. Slow; tests/workloads holds the fast ones equal
to these (to float rounding, the sums run in another order)."""

from __future__ import annotations

import math

import numpy as np


def _sigmoid(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def logreg_gradient(w: np.ndarray, xb: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """(1/n) Σ_i (σ(w·x_i) - y_i) x_i, plus l2·w on every weight but the bias."""
    n, d = xb.shape
    grad = [0.0] * d
    for i in range(n):
        z = sum(float(w[j]) * float(xb[i, j]) for j in range(d))
        residual = _sigmoid(z) - float(y[i])
        for j in range(d):
            grad[j] += residual * float(xb[i, j]) / n
    for j in range(d - 1):
        grad[j] += l2 * float(w[j])
    return np.array(grad)


def mlp_gradient(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    """Backpropagation through h = tanh(x W1 + b1), p = σ(h·w2 + b2), example by example."""
    n, d = x.shape
    hidden = params["b1"].shape[0]
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], float(params["b2"][0])
    g_w1 = np.zeros((d, hidden))
    g_b1 = np.zeros(hidden)
    g_w2 = np.zeros(hidden)
    g_b2 = 0.0
    for i in range(n):
        h = [math.tanh(sum(x[i, j] * w1[j, k] for j in range(d)) + b1[k]) for k in range(hidden)]
        p = _sigmoid(sum(h[k] * w2[k] for k in range(hidden)) + b2)
        dz2 = (p - float(y[i])) / n
        g_b2 += dz2
        for k in range(hidden):
            g_w2[k] += h[k] * dz2
            dh = dz2 * w2[k] * (1.0 - h[k] * h[k])
            g_b1[k] += dh
            for j in range(d):
                g_w1[j, k] += x[i, j] * dh
    return {"w1": g_w1, "b1": g_b1, "w2": g_w2, "b2": np.array([g_b2])}
