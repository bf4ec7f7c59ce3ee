"""The workloads a provider agent runs, by the name a request's `workload` string gives.

- `preprocess` (a dataset): the dataset standardized per column, clipped to ±`clip` (5);
- `train-logreg` (a labelled dataset, optionally a model to start from): a `logreg` model;
  steps (200), lr (0.5), l2 (0.001);
- `train-mlp` (a labelled dataset): an `mlp` model with one tanh layer; hidden (16),
  steps (300), lr (0.5), seed (0);
- `infer` (a model and a dataset): predictions, and accuracy if the data has labels;
- `fedavg` (a labelled dataset with a `client` column, optionally the global model): the
  next global `logreg` model with its privacy parameters; local_steps (5), lr (0.5),
  clip (1), noise (1.1), round (1), epsilon (8), delta (1e-5), seed (0).

A request's inputs are a set of CIDs (the ledger keeps them sorted), so a workload finds
each input by its kind, not by its position: exactly one dataset, at most one model.

`execute(spec, inputs)` runs a workload on the inputs' bytes and returns the output
archive's bytes and a short summary (loss, accuracy, ε ...). It is what the sandboxed child
process calls (`mercat.workloads.child`); it imports numpy and nothing heavier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mercat.errors import InvalidWorkloadError
from mercat.workloads import archive, learning
from mercat.workloads.spec import Param, WorkloadSpec

MAX_ROWS = 1_000_000
MAX_FEATURES = 4096
MAX_INPUTS = 8


@dataclass(frozen=True)
class Inputs:
    """A task's input archives, found by kind."""

    dataset: dict[str, np.ndarray]
    model: dict[str, np.ndarray] | None

    def x(self) -> np.ndarray:
        x = archive.floats(self.dataset, "x", 2)
        rows, features = x.shape
        if not 1 <= rows <= MAX_ROWS or not 1 <= features <= MAX_FEATURES:
            raise InvalidWorkloadError(
                f"a dataset has 1 to {MAX_ROWS} rows of 1 to {MAX_FEATURES} features, "
                f"got {rows} × {features}"
            )
        return x

    def y(self, rows: int) -> np.ndarray:
        y = archive.floats(self.dataset, "y", 1)
        if y.shape != (rows,) or not np.all((y == 0) | (y == 1)):
            raise InvalidWorkloadError(f"labels y must be {rows} values in {{0, 1}}")
        return y

    def client(self, rows: int) -> np.ndarray:
        client = self.dataset.get("client")
        if client is None or client.dtype.kind != "i" or client.shape != (rows,):
            raise InvalidWorkloadError(f"fedavg needs a `client` column of {rows} integer ids")
        return client


def read_inputs(blobs: Sequence[bytes], need_model: bool = False) -> Inputs:
    if len(blobs) > MAX_INPUTS:
        raise InvalidWorkloadError(f"a task takes at most {MAX_INPUTS} inputs")
    found: dict[str, list[dict[str, np.ndarray]]] = {"dataset": [], "model": []}
    for blob in blobs:
        kind, arrays = archive.load(blob)
        if kind not in found:
            raise InvalidWorkloadError(f"a task's inputs are datasets and models, not {kind}")
        found[kind].append(arrays)
    if len(found["dataset"]) != 1 or len(found["model"]) > 1:
        raise InvalidWorkloadError(
            f"a task takes one dataset and at most one model, got {len(found['dataset'])} "
            f"datasets and {len(found['model'])} models"
        )
    model = found["model"][0] if found["model"] else None
    if need_model and model is None:
        raise InvalidWorkloadError("this workload needs a model among its inputs")
    return Inputs(found["dataset"][0], model)


def _model_weights(model: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
    kind = archive.text(model, "model")
    names = {"logreg": {"w": 1}, "mlp": {"w1": 2, "b1": 1, "w2": 1, "b2": 1}}.get(kind)
    if names is None:
        raise InvalidWorkloadError(f"unknown model {kind!r} (logreg or mlp)")
    weights = {name: archive.floats(model, name, ndim) for name, ndim in names.items()}
    if kind == "mlp":
        hidden = weights["w1"].shape[1]
        if weights["b1"].shape != (hidden,) or weights["w2"].shape != (hidden,):
            raise InvalidWorkloadError("the MLP's layers do not fit together")
        if weights["b2"].shape != (1,):
            raise InvalidWorkloadError("the MLP's output bias is one number")
    return kind, weights


# --- the workloads ---------------------------------------------------------------------------


def _preprocess(spec: WorkloadSpec, inputs: Inputs) -> tuple[str, dict[str, Any], dict[str, Any]]:
    x = inputs.x()
    standardized, mean, scale = learning.standardize(x, float(spec["clip"]))
    out: dict[str, Any] = {"x": standardized, "mean": mean, "scale": scale}
    for name in ("y", "client"):
        if name in inputs.dataset:
            out[name] = inputs.dataset[name]
    return "dataset", out, {"rows": int(x.shape[0]), "features": int(x.shape[1])}


def _train_logreg(spec: WorkloadSpec, inputs: Inputs) -> tuple[str, dict[str, Any], dict]:
    x = inputs.x()
    y = inputs.y(x.shape[0])
    start = None
    if inputs.model is not None:
        kind, weights = _model_weights(inputs.model)
        if kind != "logreg":
            raise InvalidWorkloadError("train-logreg starts from a logreg model only")
        start = weights["w"]
    w = learning.train_logreg(x, y, int(spec["steps"]), float(spec["lr"]), float(spec["l2"]), start)
    xb = learning.with_bias(x)
    loss = learning.logreg_loss(w, xb, y)
    acc = learning.accuracy(learning.sigmoid(xb @ w), y)
    return (
        "model",
        {"model": np.array("logreg"), "w": w, "loss": loss},
        {
            "loss": loss,
            "accuracy": acc,
        },
    )


def _train_mlp(spec: WorkloadSpec, inputs: Inputs) -> tuple[str, dict[str, Any], dict]:
    x = inputs.x()
    y = inputs.y(x.shape[0])
    params = learning.train_mlp(
        x, y, int(spec["hidden"]), int(spec["steps"]), float(spec["lr"]), int(spec["seed"])
    )
    acc = learning.accuracy(learning.mlp_forward(params, x)[1], y)
    return "model", {"model": np.array("mlp"), **params}, {"accuracy": acc}


def _infer(spec: WorkloadSpec, inputs: Inputs) -> tuple[str, dict[str, Any], dict]:
    assert inputs.model is not None
    kind, weights = _model_weights(inputs.model)
    x = inputs.x()
    p = learning.predict(kind, weights, x)
    out: dict[str, Any] = {"p": p, "label": (p >= 0.5).astype(np.int64)}
    summary: dict[str, Any] = {"rows": int(x.shape[0])}
    if "y" in inputs.dataset:
        out["accuracy"] = summary["accuracy"] = learning.accuracy(p, inputs.y(x.shape[0]))
    return "predictions", out, summary


def _fedavg(spec: WorkloadSpec, inputs: Inputs) -> tuple[str, dict[str, Any], dict]:
    from mercat.workloads.federated import fedavg_round

    x = inputs.x()
    y = inputs.y(x.shape[0])
    client = inputs.client(x.shape[0])
    if inputs.model is not None:
        kind, weights = _model_weights(inputs.model)
        if kind != "logreg":
            raise InvalidWorkloadError("fedavg averages logreg models only")
        w = weights["w"]
    else:
        w = np.zeros(x.shape[1] + 1)
    new, clients = fedavg_round(
        x, y, client, w,
        local_steps=int(spec["local_steps"]), lr=float(spec["lr"]),
        clip_norm=float(spec["clip"]), noise_multiplier=float(spec["noise"]),
        seed=int(spec["seed"]),
    )  # fmt: skip
    acc = learning.accuracy(learning.sigmoid(learning.with_bias(x) @ new), y)
    record = {
        "noise_multiplier": float(spec["noise"]), "clip_norm": float(spec["clip"]),
        "clients": clients, "fl_round": int(spec["round"]),
    }  # fmt: skip
    return (
        "model",
        {"model": np.array("logreg"), "w": new, **record},
        {
            "accuracy": acc,
            **record,
        },
    )


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    params: dict[str, Param]
    run: Callable[[WorkloadSpec, Inputs], tuple[str, dict[str, Any], dict[str, Any]]]
    needs_model: bool = False


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "preprocess",
            "standardize a dataset's features (mean 0, sd 1 per column), clipped",
            {"clip": Param(float, 5.0, 0.1, 1e6, "clip standardized values to ±clip")},
            _preprocess,
        ),
        Workload(
            "train-logreg",
            "L2-regularised logistic regression by full-batch gradient descent",
            {
                "steps": Param(int, 200, 1, 20_000, "gradient steps"),
                "lr": Param(float, 0.5, 1e-6, 100.0, "learning rate"),
                "l2": Param(float, 1e-3, 0.0, 100.0, "L2 penalty on the weights"),
            },
            _train_logreg,
        ),
        Workload(
            "train-mlp",
            "a one-hidden-layer (tanh) network by full-batch gradient descent",
            {
                "hidden": Param(int, 16, 1, 256, "hidden units"),
                "steps": Param(int, 300, 1, 20_000, "gradient steps"),
                "lr": Param(float, 0.5, 1e-6, 100.0, "learning rate"),
                "seed": Param(int, 0, 0, 2**31 - 1, "seed of the initial weights"),
            },
            _train_mlp,
        ),
        Workload("infer", "predict with a model on a dataset", {}, _infer, needs_model=True),
        Workload(
            "fedavg",
            "one round of DP federated averaging (clip, Gaussian noise: Alg. 1)",
            {
                "local_steps": Param(int, 5, 1, 1000, "local gradient steps per client"),
                "lr": Param(float, 0.5, 1e-6, 100.0, "local learning rate"),
                "clip": Param(float, 1.0, 1e-6, 1e6, "clipping norm C of each update"),
                "noise": Param(float, 1.1, 1e-3, 1e6, "noise multiplier z (σ = z·C)"),
                "round": Param(int, 1, 1, 100_000, "which round of the training run this is"),
                "epsilon": Param(float, 8.0, 1e-3, 700.0, "the run's privacy budget ε"),
                "delta": Param(float, 1e-5, 1e-12, 0.1, "the run's δ"),
                "seed": Param(int, 0, 0, 2**31 - 1, "seed of this round's noise"),
            },
            _fedavg,
        ),
    )
}


def execute(
    spec: WorkloadSpec, blobs: Sequence[bytes], *, corrupt: bool = False
) -> tuple[bytes, dict[str, Any]]:
    """(output archive bytes, summary) of running `spec` on the input archives `blobs`.
    `corrupt` is failure injection for devnets: the result is altered slightly (a wrong
    output that still looks like one), as a faulty or dishonest provider would return."""
    workload = WORKLOADS[spec.name]
    inputs = read_inputs(blobs, need_model=workload.needs_model)
    kind, arrays, summary = workload.run(spec, inputs)
    if corrupt:
        first = next(k for k in sorted(arrays) if np.asarray(arrays[k]).dtype.kind == "f")
        arrays[first] = np.asarray(arrays[first]) + 1e-3
    return archive.dump(kind, arrays), summary
