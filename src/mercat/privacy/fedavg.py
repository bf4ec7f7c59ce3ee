"""Federated averaging with differentially private updates (seed 002, §IV.C, §V).

Seed 002 trains models "on distributed datasets without accessing raw data" and noises the
gradients they produce (eq. 4). mercat makes that a concrete, measurable training loop:
federated averaging (McMahan et al. 2017) of a logistic-regression model, where each round

1. every client joins with probability q (Poisson sampling, independent of the data);
2. each joining client runs `local_steps` full-batch gradient steps from the global model and
   computes its update Δθ_c (its new model minus the global one);
3. the updates are clipped to L2 norm C and noised with N(0, (z·C)²), either
   - `noise="central"`: once, by the aggregator, on the sum (DP-FedAvg, McMahan et al. 2018):
     the guarantee is client-level (add or remove a whole client) against anyone who sees the
     model, with amplification by sampling; or
   - `noise="local"`: by every client on its own update before it leaves (eq. 4 applied where
     the gradient is produced): the guarantee holds against the aggregator too, but a client
     alone hides its update only with sensitivity 2C (its data replaced by any other), and
     sampling does not amplify (the aggregator sees who took part);
   - `noise="example"`: DP-SGD inside every client (Abadi et al. 2016): each local step
     clips every example's gradient to C and noises their sum with N(0, (z·C)²); the
     guarantee is example-level (add or remove one example of a client's data), the clients'
     updates then go to the aggregator as they are;
   - `noise="none"`: plain FedAvg, no clipping, the baseline;
4. the aggregator adds the noised sum divided by the expected number of clients q·N (a fixed
   denominator: dividing by the realized count would leak it) to the model.

`train` is the fast path: all clients' rows stacked in one array, the local steps compiled by
numba (clients in parallel, one streaming pass over a client's rows per step). `train_reference`
is its readable twin in numpy, one client at a time; both draw the same random numbers in the
same order and a test holds them equal (to float rounding: the sums run in another order).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

import numba as nb
import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.privacy.accountant import GaussianRuns, epsilon_spent
from mercat.privacy.gaussian import clip, clip_rows, privatize

MAX_FEDERATION_FLOATS = 250_000_000  # 2 GiB of float64 features, the data of one run

NoisePlacement = Literal["none", "central", "local", "example"]
NOISE_PLACEMENTS: tuple[str, ...] = get_args(NoisePlacement)


@dataclass(frozen=True)
class Federation:
    """Clients' private data and a shared test set: features X (with a bias column), labels in
    {0, 1}. `client_x[c]` has shape (n_c, d); clients may hold different amounts of data."""

    client_x: tuple[np.ndarray, ...]
    client_y: tuple[np.ndarray, ...]
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def clients(self) -> int:
        return len(self.client_x)

    @property
    def dim(self) -> int:
        return int(self.test_x.shape[1])


def make_federation(
    clients: int,
    dim: int,
    rng: np.random.Generator,
    mean_examples: int = 50,
    heterogeneity: float = 1.0,
    test_examples: int = 2000,
) -> Federation:
    """A synthetic federation: one true linear classifier shared by all, each client's features
    shifted by its own offset of scale `heterogeneity` (non-IID data), client sizes drawn from
    a geometric law around `mean_examples` (a few large clients, many small ones)."""
    for name, value in (
        ("clients", clients),
        ("dim", dim),
        ("mean_examples", mean_examples),
        ("test_examples", test_examples),
    ):
        check.integer(name, value, 1)
    if (clients * mean_examples + test_examples) * (dim + 1) > MAX_FEDERATION_FLOATS:
        raise InvalidParameterError(
            f"a federation of {clients} clients × {mean_examples} examples × {dim + 1} features "
            f"exceeds {MAX_FEDERATION_FLOATS:,} numbers ({8 * MAX_FEDERATION_FLOATS / 1e9:.0f} GB)"
        )
    check.non_negative("heterogeneity", heterogeneity)
    if heterogeneity > 1e3:
        raise InvalidParameterError(f"heterogeneity must be at most 1000, got {heterogeneity!r}")
    truth = rng.normal(size=dim) / math.sqrt(dim)

    def sample(n: int, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, dim)) + offset
        logits = 3.0 * (x @ truth)
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(float)
        return np.hstack([x, np.ones((n, 1))]), y

    xs, ys = [], []
    for _ in range(clients):
        n = int(rng.geometric(1.0 / mean_examples))
        x, y = sample(n, heterogeneity * rng.normal(size=dim) / math.sqrt(dim))
        xs.append(x)
        ys.append(y)
    test_x, test_y = sample(test_examples, np.zeros(dim))
    return Federation(tuple(xs), tuple(ys), test_x, test_y)


@dataclass(frozen=True)
class FedAvgConfig:
    rounds: int = 50
    sampling_rate: float = 0.2
    local_steps: int = 5
    learning_rate: float = 0.5
    server_learning_rate: float = 1.0
    noise: NoisePlacement = "central"
    noise_multiplier: float = 1.0
    clip_norm: float = 1.0
    l2: float = 1e-3  # ridge on the weights keeps local steps stable on separable client data

    def __post_init__(self) -> None:
        check.integer("rounds", self.rounds, 1)
        check.integer("local steps", self.local_steps, 1)
        rate = check.real("sampling rate", self.sampling_rate)
        if not 0 < rate <= 1:
            raise InvalidParameterError(f"sampling rate must lie in (0, 1], got {rate!r}")
        for name in ("learning_rate", "server_learning_rate", "clip_norm"):
            check.positive(name, getattr(self, name))
        check.non_negative("l2", self.l2)
        check.choice("noise", self.noise, NOISE_PLACEMENTS)
        z = check.non_negative("noise multiplier", self.noise_multiplier)
        if self.noise != "none" and z == 0:
            raise InvalidParameterError(f"noise multiplier must be > 0 with noise={self.noise!r}")


@dataclass(frozen=True)
class FedAvgResult:
    weights: np.ndarray
    accuracy: np.ndarray  # test accuracy after each round, shape (rounds,)
    participations: np.ndarray  # rounds each client took part in, shape (clients,)
    seconds: float  # wall time of the training loop alone (no set-up, no accounting)
    config: FedAvgConfig = field(repr=False)

    def privacy_runs(self) -> GaussianRuns | None:
        """What the run released, as the accountant sees it; None for noise='none'."""
        cfg = self.config
        if cfg.noise == "none":
            return None
        if cfg.noise == "central":
            return GaussianRuns(cfg.noise_multiplier, cfg.rounds, cfg.sampling_rate)
        busiest = max(int(self.participations.max()), 1)
        if cfg.noise == "example":
            # every local step is a Gaussian release of the clipped sum over the client's
            # examples (sensitivity C, full batch: no sampling), for the busiest client
            return GaussianRuns(cfg.noise_multiplier, cfg.local_steps * busiest, 1.0)
        # local: sensitivity 2C, no amplification; the busiest client released the most.
        return GaussianRuns(cfg.noise_multiplier / 2, busiest, 1.0)

    def epsilon(self, delta: float) -> float:
        """ε the run spent at δ (client level; example level for noise='example'); without
        noise there is no guarantee, so inf."""
        runs = self.privacy_runs()
        return math.inf if runs is None else epsilon_spent(runs, delta)


def accuracy(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x @ weights > 0) == (y > 0.5)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _server_step(
    w: np.ndarray, total: np.ndarray, joined: int, cfg: FedAvgConfig, clients: int, rng
) -> np.ndarray:
    """The aggregator's move, shared by both engines: central noise on the sum, then the
    average over the expected count q·N (private runs) or the realized count (plain FedAvg)."""
    if cfg.noise == "central":
        total = total + rng.normal(0.0, cfg.noise_multiplier * cfg.clip_norm, size=total.shape)
    if cfg.noise in ("none", "example"):  # example: the privacy is already in the updates
        step = total / joined if joined else total
    else:
        step = total / (cfg.sampling_rate * clients)
    return _finite(w + cfg.server_learning_rate * step, cfg)


def _finite(values: np.ndarray, cfg: FedAvgConfig) -> np.ndarray:
    """`values`, or the error that training diverged (NaN or inf weights train nothing, and
    an accuracy measured on them would be a coin's)."""
    if not np.all(np.isfinite(values)):
        raise InvalidParameterError(
            "training diverged (the model is no longer finite): lower the learning rate "
            f"({cfg.learning_rate}) or the server learning rate ({cfg.server_learning_rate})"
        )
    return values


# --- the readable reference: one client at a time ---------------------------------------


def _local_update(
    w: np.ndarray, x: np.ndarray, y: np.ndarray, cfg: FedAvgConfig, rng: np.random.Generator
) -> np.ndarray:
    local = w.copy()
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is `_finite`'s to report
        for _ in range(cfg.local_steps):
            residual = _sigmoid(x @ local) - y
            if cfg.noise == "example":  # DP-SGD: clip each example's gradient, noise the sum
                per_example = x * residual[:, None]
                summed = clip_rows(per_example, cfg.clip_norm).sum(axis=0) + rng.normal(
                    0.0, cfg.noise_multiplier * cfg.clip_norm, size=len(local)
                )
            else:
                summed = x.T @ residual
            local = local - cfg.learning_rate * (summed / len(y) + cfg.l2 * local)
    return local - w


def train_reference(
    federation: Federation, cfg: FedAvgConfig, rng: np.random.Generator
) -> FedAvgResult:
    w = np.zeros(federation.dim)
    accuracies = np.empty(cfg.rounds)
    participations = np.zeros(federation.clients, dtype=np.int64)
    start = time.perf_counter()
    for t in range(cfg.rounds):
        joined = np.flatnonzero(rng.random(federation.clients) < cfg.sampling_rate)
        participations[joined] += 1
        total = np.zeros(federation.dim)
        for c in joined:
            update = _finite(
                _local_update(w, federation.client_x[c], federation.client_y[c], cfg, rng), cfg
            )
            if cfg.noise == "local":  # Alg. 1 where the update is produced
                update = privatize(update, cfg.noise_multiplier, cfg.clip_norm, rng)
            elif cfg.noise == "central":
                update = clip(update, cfg.clip_norm)
            total += update
        w = _server_step(w, total, len(joined), cfg, federation.clients, rng)
        accuracies[t] = accuracy(w, federation.test_x, federation.test_y)
    seconds = time.perf_counter() - start
    return FedAvgResult(w, accuracies, participations, seconds, cfg)


# --- the fast path: every joining client at once ----------------------------------------


@dataclass(frozen=True)
class _Stacked:
    """Every client's rows in one array, client after client: client c owns rows
    offsets[c] .. offsets[c+1]."""

    x: np.ndarray  # (total rows, d), C-contiguous
    y: np.ndarray  # (total rows,)
    offsets: np.ndarray  # (clients + 1,)
    row_norm: np.ndarray  # (total rows,): ‖x_r‖, for per-example clipping

    @classmethod
    def of(cls, federation: Federation) -> _Stacked:
        counts = np.array([len(y) for y in federation.client_y], dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        x = np.ascontiguousarray(np.vstack(federation.client_x))
        return cls(x, np.concatenate(federation.client_y), offsets, np.linalg.norm(x, axis=1))


@nb.njit(cache=True, parallel=True)
def _local_updates(  # pragma: no cover
    x, y, row_norm, offsets, joined, w, local_steps, learning_rate, l2, example_clip, noise
):
    """Every joining client's update, clients in parallel. One pass over a client's rows per
    local step: a row's residual needs only its own dot product, so the gradient accumulates
    as the rows stream by (the reference makes two passes, logits then gradient). With
    `example_clip` > 0 (DP-SGD) each example's gradient residual·x is scaled to norm at most
    the clip (its norm is |residual|·‖x‖, so no second pass) and `noise[j, step]` is added to
    the sum; the noise is drawn outside, in the reference's order."""
    dim = w.shape[0]
    updates = np.empty((joined.shape[0], dim))
    for j in nb.prange(joined.shape[0]):
        c = joined[j]
        start, stop = offsets[c], offsets[c + 1]
        local = w.copy()
        gradient = np.empty(dim)
        for step in range(local_steps):
            gradient[:] = 0.0
            for r in range(start, stop):
                dot = 0.0
                for i in range(dim):
                    dot += x[r, i] * local[i]
                residual = 0.5 * (1.0 + np.tanh(0.5 * dot)) - y[r]
                if example_clip > 0:
                    norm = abs(residual) * row_norm[r]
                    if norm > example_clip:
                        residual *= example_clip / norm
                for i in range(dim):
                    gradient[i] += residual * x[r, i]
            if example_clip > 0:
                for i in range(dim):
                    gradient[i] += noise[j, step, i]
            n = stop - start
            for i in range(dim):
                local[i] -= learning_rate * (gradient[i] / n + l2 * local[i])
        for i in range(dim):
            updates[j, i] = local[i] - w[i]
    return updates


def train(federation: Federation, cfg: FedAvgConfig, rng: np.random.Generator) -> FedAvgResult:
    stacked = _Stacked.of(federation)
    w = np.zeros(federation.dim)
    accuracies = np.empty(cfg.rounds)
    participations = np.zeros(federation.clients, dtype=np.int64)
    sigma = cfg.noise_multiplier * cfg.clip_norm
    start = time.perf_counter()
    for t in range(cfg.rounds):
        joined = np.flatnonzero(rng.random(federation.clients) < cfg.sampling_rate)
        participations[joined] += 1
        example = cfg.noise == "example"
        noise = (  # the reference draws these client by client, step by step: same order
            rng.normal(0.0, sigma, size=(len(joined), cfg.local_steps, federation.dim))
            if example
            else np.zeros((0, 0, 0))
        )
        updates = _finite(
            _local_updates(
                stacked.x,
                stacked.y,
                stacked.row_norm,
                stacked.offsets,
                joined,
                w,
                cfg.local_steps,
                cfg.learning_rate,
                cfg.l2,
                cfg.clip_norm if example else 0.0,
                noise,
            ),
            cfg,
        )
        if cfg.noise in ("central", "local") and len(joined):
            updates = clip_rows(updates, cfg.clip_norm)
        if cfg.noise == "local":
            # One (k, d) draw is the k per-client draws of the reference, in the same order.
            updates = updates + rng.normal(0.0, sigma, size=updates.shape)
        total = updates.sum(axis=0)
        w = _server_step(w, total, len(joined), cfg, federation.clients, rng)
        accuracies[t] = accuracy(w, federation.test_x, federation.test_y)
    seconds = time.perf_counter() - start
    return FedAvgResult(w, accuracies, participations, seconds, cfg)
