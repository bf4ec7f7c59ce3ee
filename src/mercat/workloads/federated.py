"""One round of differentially private federated averaging as a marketplace task (seed 002,
eq. 4 and Alg. 1-2).

The task's dataset carries a `client` column: the rows of each client stand for data that
client holds. One round, from the global model w (the task's input model, or zeros):

1. every client runs `local_steps` full-batch gradient steps of logistic regression from w
   and computes its update Δ_c = w_c - w;
2. the updates are clipped to L2 norm C (`mercat.privacy.gaussian.clip_rows`);
3. the sum gets one draw of N(0, (z·C)²) per coordinate, from a generator seeded by the
   workload's `seed` (so replicas and re-executions draw the same noise: the noise protects
   the clients from whoever sees the released model, not from the task's own executors,
   who see the data anyway);
4. w' = w + (Σ clipped Δ_c + noise) / K for K clients.

This is the central-noise DP-FedAvg of `mercat.privacy.fedavg` with every client taking part
(sampling rate 1). What a training run spends grows with its rounds: a task states which
round of its run it is (`round`, 1-based), and Alg. 2 (`privacy_check`) asks whether
`round` Gaussian releases with noise multiplier z stay within the request's (ε, δ). The
check runs in the long-lived agent before the task executes (a task that would overspend is
refused, seed 002's "privacy parameters need adjustment") and in every oracle, on the
parameters of the request's own workload string, never on what an output claims.
"""

from __future__ import annotations

import numpy as np

from mercat.errors import InvalidWorkloadError
from mercat.privacy.gaussian import clip_rows
from mercat.workloads.learning import logreg_gradient, with_bias
from mercat.workloads.spec import WorkloadSpec

MAX_CLIENTS = 1000


def fedavg_round(
    x: np.ndarray,
    y: np.ndarray,
    client: np.ndarray,
    w: np.ndarray,
    *,
    local_steps: int,
    lr: float,
    clip_norm: float,
    noise_multiplier: float,
    seed: int,
) -> tuple[np.ndarray, int]:
    """(the new global weights, the number of clients) after one round (module docstring)."""
    ids = np.unique(client)
    if len(ids) > MAX_CLIENTS:
        raise InvalidWorkloadError(f"a round takes at most {MAX_CLIENTS} clients, got {len(ids)}")
    xb = with_bias(x)
    if w.shape != (xb.shape[1],):
        raise InvalidWorkloadError(
            f"the model has {w.shape[0]} weights, the data needs {xb.shape[1]} (features + bias)"
        )
    updates = np.empty((len(ids), xb.shape[1]))
    for row, c in enumerate(ids):
        mine = client == c
        local = w.copy()
        for _ in range(local_steps):
            local -= lr * logreg_gradient(local, xb[mine], y[mine], 0.0)
        updates[row] = local - w
    clipped = clip_rows(updates, clip_norm)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, noise_multiplier * clip_norm, size=w.shape)
    return w + (clipped.sum(axis=0) + noise) / len(ids), len(ids)


def privacy_check(spec: WorkloadSpec):  # -> mercat.privacy.accountant.PrivacyCheck
    """Alg. 2 on a fedavg task's parameters: do `round` releases with noise multiplier
    `noise` stay within (`epsilon`, `delta`)? Imports the accountant (scipy): call it in a
    long-lived process, not in the sandbox."""
    from mercat.privacy.accountant import GaussianRuns, check_differential_privacy

    runs = GaussianRuns(float(spec["noise"]), rounds=int(spec["round"]), sampling_rate=1.0)
    return check_differential_privacy(runs, float(spec["epsilon"]), float(spec["delta"]))
