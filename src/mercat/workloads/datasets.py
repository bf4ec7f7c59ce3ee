"""Synthetic datasets for requesters, shipped with the project (nothing is downloaded):
binary classification with a known linear truth, optionally split among clients for
federated learning, as workload archives (`mercat.workloads.archive`). The same seed gives
the same bytes, hence the same CID."""

from __future__ import annotations

import math

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.workloads import archive

MAX_CELLS = 50_000_000  # rows × features: 400 MB of float64


def classification(rows: int, features: int, seed: int, clients: int = 0) -> bytes:
    """`rows` examples of `features` standard normal features (each client's shifted by its
    own offset, non-IID as in `mercat.privacy.fedavg.make_federation`), labels drawn from a
    logistic model of one true weight vector; `clients` > 0 adds a `client` column."""
    rows = check.integer("rows", rows, 2)
    features = check.integer("features", features, 1)
    clients = check.integer("clients", clients, 0)
    if rows * features > MAX_CELLS:
        raise InvalidParameterError(f"rows × features must be at most {MAX_CELLS:,}")
    if clients > rows:
        raise InvalidParameterError(f"{clients} clients need at least as many rows")
    rng = np.random.default_rng(check.integer("seed", seed, 0))
    truth = rng.normal(size=features) / math.sqrt(features)
    x = rng.normal(size=(rows, features))
    arrays: dict[str, object] = {}
    if clients:
        client = np.arange(rows) % clients
        offsets = rng.normal(size=(clients, features)) / math.sqrt(features)
        x = x + offsets[client]
        arrays["client"] = client.astype(np.int64)
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-3.0 * (x @ truth)))).astype(np.float64)
    arrays.update(x=x, y=y)
    return archive.dump("dataset", arrays)


def initial_model(features: int) -> bytes:
    """A logistic-regression model of zeros: the starting point of a federated run."""
    features = check.integer("features", features, 1)
    return archive.dump("model", {"model": np.array("logreg"), "w": np.zeros(features + 1)})


def random_model(features: int, seed: int) -> bytes:
    """A logistic-regression model with weights drawn from N(0, 1/features): a stand-in for
    a pretrained model a provider offers as an asset (computed without BLAS, so its bytes,
    hence its CID, are the same on any machine)."""
    features = check.integer("features", features, 1)
    rng = np.random.default_rng(check.integer("seed", seed, 0))
    w = rng.normal(0.0, 1.0 / math.sqrt(features), size=features + 1)
    return archive.dump("model", {"model": np.array("logreg"), "w": w})
