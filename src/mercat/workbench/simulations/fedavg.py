"""Federated averaging with differential privacy (seed 002, "CloudChain": eq. 4, Alg. 1-2).

Parameters are `mercat simulate fedavg`'s: the synthetic federation (clients, features,
examples, heterogeneity), the training (`FedAvgConfig`), δ, and the engine. The federation
is drawn once per point from the seed (as the command line does); the runs differ in the
training's randomness: run 0 is exactly `mercat simulate fedavg --seed SEED`, run r > 0
trains from the generator [seed, 1, r]. Tables:

- `runs`: per run, the final test accuracy, ε spent at δ, the busiest client's rounds;
- `steps`: per run and round (every `step_every`-th and the last), the test accuracy.

Training time is not in the tables (they hold only what the seed determines).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mercat.workbench.simulation import Parameter, PointTables, Simulation, Steps, mean_and_se

_P = Parameter


def training_rng(seed: int, run: int) -> np.random.Generator:
    """The random numbers of training run `run` on the federation of `seed`: run 0 is
    `mercat simulate fedavg --seed SEED`'s single run, later runs draw from (seed, 1, run)."""
    return np.random.default_rng([seed, 1] if run == 0 else [seed, 1, run])


class FedAvgSimulation(Simulation):
    """DP-FedAvg on a synthetic federation: accuracy against ε (seed 002)."""

    name = "fedavg"
    title = "Seed 002 (CloudChain): federated learning with differentially private updates"
    step = "round"
    headline = ("final_accuracy", "epsilon")
    step_measures = ("accuracy",)
    parameters = (
        _P("clients", 1000, "int", "clients in the synthetic federation", minimum=1),
        _P("dim", 20, "int", "features per example", minimum=1),
        _P("mean_examples", 50, "int", "mean examples per client", minimum=1),
        _P("heterogeneity", 1.0, "float", "scale of each client's feature shift", minimum=0),
        # past these a run takes days, or its local noise (a normal per joining client, local
        # step and feature) does not fit
        _P("rounds", 50, "int", "training rounds", minimum=1, maximum=100_000),
        _P("sampling_rate", 0.2, "float", "probability that a client joins a round"),
        _P("local_steps", 5, "int", "gradient steps per client per round", minimum=1,
           maximum=1000),
        _P("learning_rate", 0.5, "float", "clients' step size"),
        _P("server_learning_rate", 1.0, "float", "the aggregator's step size"),
        _P("noise", "central", "str", "none, central, local or example",
           choices=("none", "central", "local", "example")),
        _P("noise_multiplier", 1.0, "float", "z = σ / clip norm", minimum=0),
        _P("clip_norm", 1.0, "float", "L2 bound on an update (or a gradient)"),
        _P("l2", 1e-3, "float", "ridge on the weights", minimum=0),
        _P("delta", 1e-5, "float", "δ at which ε is reported"),
        _P("engine", "fast", "str", "fast (vectorized) or reference (per client)",
           choices=("fast", "reference")),
    )  # fmt: skip

    _FEDERATION = ("clients", "dim", "mean_examples", "heterogeneity")

    def build(self, params: Mapping[str, Any]) -> Any:
        from mercat import validation as check
        from mercat.privacy.fedavg import MAX_FEDERATION_FLOATS, FedAvgConfig

        config = FedAvgConfig(
            **{k: params[k] for k in FedAvgConfig.__dataclass_fields__ if k in params}
        )
        check.open_unit("delta", params["delta"])
        federation = {k: params[k] for k in self._FEDERATION}
        floats = (params["clients"] * params["mean_examples"] + 2000) * (params["dim"] + 1)
        if floats > MAX_FEDERATION_FLOATS:  # make_federation says so too, after the point ran
            from mercat.errors import InvalidParameterError

            raise InvalidParameterError(f"a federation of {floats:,} numbers is too large")
        return config, federation, params["delta"], params["engine"]

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        from mercat.privacy import fedavg as fl

        cfg, federation_params, delta, engine = config
        federation = fl.make_federation(
            federation_params["clients"],
            federation_params["dim"],
            np.random.default_rng([seed, 0]),
            federation_params["mean_examples"],
            federation_params["heterogeneity"],
        )
        train = fl.train if engine == "fast" else fl.train_reference
        rows, curves = [], []
        for r in range(runs):
            rng = training_rng(seed, r)
            result = train(federation, cfg, rng)
            rows.append(
                {
                    "run": r,
                    "final_accuracy": float(result.accuracy[-1]),
                    "epsilon": float(result.epsilon(delta)),
                    "max_participations": int(result.participations.max()),
                    "mean_participations": float(result.participations.mean()),
                }
            )
            curves.append(result.accuracy)
        table = pd.DataFrame(rows)
        accuracy, accuracy_se = mean_and_se(table["final_accuracy"])
        summary = {
            "final_accuracy": accuracy,
            "final_accuracy_se": accuracy_se,
            "epsilon": float(table["epsilon"].mean()),
            "epsilon_max": float(table["epsilon"].max()),
            "max_participations": int(table["max_participations"].max()),
        }
        tables = {"runs": table}
        if steps.keep:
            kept = np.asarray(steps.kept(cfg.rounds), dtype=np.int64)
            tables["steps"] = pd.DataFrame(
                {
                    "run": np.repeat(np.arange(runs), kept.size),
                    "round": np.tile(kept + 1, runs),
                    "accuracy": np.concatenate([c[kept] for c in curves]),
                }
            )
        return PointTables(summary, tables)
