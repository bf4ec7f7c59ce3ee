"""Preprocessing, training and inference: small numpy models that run on two cores.

Everything here is a deterministic function of its inputs (full-batch gradient descent, no
shuffling, weights initialised from a seed the workload string carries), so two replicas of
a task, or an oracle re-executing it, compute the same bytes on the same machine. Matrix
products go through BLAS; the sandbox pins it to one thread (`mercat.workloads.sandbox`),
because a multi-threaded reduction may sum in another order from one run to the next.

- `standardize`: features to mean 0 and standard deviation 1 per column, clipped;
- `train_logreg`: L2-regularised logistic regression (the bias is not regularised);
- `train_mlp`: one tanh hidden layer and a sigmoid output, binary cross-entropy;
- `predict`: the probability of label 1 under either model.

`mercat.workloads.reference` holds the readable twins (one example at a time) of the two
gradients, and tests/workloads holds them equal.
"""

from __future__ import annotations

import numpy as np

from mercat.errors import InvalidWorkloadError


def sigmoid(z: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large |z|, and the same value on every replica
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((x.shape[0], 1))])


def standardize(x: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardized x, column means, column scales); a constant column keeps scale 1."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return np.clip((x - mean) / scale, -clip, clip), mean, scale


def logreg_gradient(w: np.ndarray, xb: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """∇ of the mean logistic loss + (l2/2)·|w without bias|² at w (xb carries the bias)."""
    n = xb.shape[0]
    residual = sigmoid(xb @ w) - y
    grad = xb.T @ residual / n
    grad[:-1] += l2 * w[:-1]
    return grad


def logreg_loss(w: np.ndarray, xb: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(sigmoid(xb @ w), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_logreg(
    x: np.ndarray, y: np.ndarray, steps: int, lr: float, l2: float, w0: np.ndarray | None = None
) -> np.ndarray:
    """Weights (the bias last) after `steps` full-batch gradient steps from w0 (or zeros)."""
    xb = with_bias(x)
    w = np.zeros(xb.shape[1]) if w0 is None else w0.astype(np.float64).copy()
    if w.shape != (xb.shape[1],):
        raise InvalidWorkloadError(
            f"the model has {w.shape[0]} weights, the data needs {xb.shape[1]} (features + bias)"
        )
    for _ in range(steps):
        w -= lr * logreg_gradient(w, xb, y, l2)
    return w


def mlp_init(features: int, hidden: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(0.0, 1.0 / np.sqrt(features), size=(features, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0.0, 1.0 / np.sqrt(hidden), size=hidden),
        "b2": np.zeros(1),
    }


def mlp_forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden activations, output probabilities)."""
    h = np.tanh(x @ params["w1"] + params["b1"])
    return h, sigmoid(h @ params["w2"] + params["b2"][0])


def mlp_gradient(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    """∇ of the mean binary cross-entropy with respect to every weight (backpropagation)."""
    n = x.shape[0]
    h, p = mlp_forward(params, x)
    dz2 = (p - y) / n
    dh = np.outer(dz2, params["w2"]) * (1.0 - h * h)
    return {
        "w1": x.T @ dh,
        "b1": dh.sum(axis=0),
        "w2": h.T @ dz2,
        "b2": np.array([dz2.sum()]),
    }


def train_mlp(
    x: np.ndarray, y: np.ndarray, hidden: int, steps: int, lr: float, seed: int
) -> dict[str, np.ndarray]:
    params = mlp_init(x.shape[1], hidden, seed)
    for _ in range(steps):
        grad = mlp_gradient(params, x, y)
        for name in params:
            params[name] = params[name] - lr * grad[name]
    return params


def predict(model: str, arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """P(label 1) for every row of x under a model archive's weights."""
    if model == "logreg":
        w = arrays["w"]
        if w.shape != (x.shape[1] + 1,):
            raise InvalidWorkloadError(
                f"the model has {w.shape[0]} weights, the data has {x.shape[1]} features"
            )
        return sigmoid(with_bias(x) @ w)
    if model == "mlp":
        if arrays["w1"].shape[0] != x.shape[1]:
            raise InvalidWorkloadError(
                f"the model takes {arrays['w1'].shape[0]} features, the data has {x.shape[1]}"
            )
        return mlp_forward(arrays, x)[1]
    raise InvalidWorkloadError(f"unknown model {model!r} (logreg or mlp)")


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y >= 0.5)))
