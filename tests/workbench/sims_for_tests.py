"""Simulations for the sweep's tests (named as module:Class in scenario files)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mercat.scenarios.agents import Job, RequesterStrategy
from mercat.workbench.simulation import Parameter, PointTables, Simulation, Steps


class Echo(Simulation):
    """Returns its value: each run's row is value × (run + 1) and seed; a value of 13 fails.
    While the file `hold` exists, points with value >= `hold_from` wait (a point that is
    still running when the sweep is stopped)."""

    name = "echo"
    title = "a test simulation"
    step = "step"
    headline = ("total",)
    step_measures = ("value",)
    parameters = (
        Parameter("value", 1.0, "float", "a number"),
        Parameter("hold", "", "str", "a file: while it exists, points from hold_from wait"),
        Parameter("hold_from", 1.0, "float", "the first value that waits"),
    )

    def build(self, params: Mapping[str, Any]) -> Any:
        return dict(params)

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        if config["value"] == 13:
            raise RuntimeError("thirteen")
        if config["hold"] and config["value"] >= config["hold_from"]:
            while os.path.exists(config["hold"]):
                time.sleep(0.05)
        rows = [{"run": r, "x": config["value"] * (r + 1), "seed": seed} for r in range(runs)]
        table = pd.DataFrame(rows)
        per_step = pd.DataFrame(
            [{"run": r, "step": s, "value": config["value"] + s} for r in range(runs)
             for s in range(1, 4)]
        )  # fmt: skip
        tables = {"runs": table, "steps": per_step} if steps.keep else {"runs": table}
        return PointTables({"total": float(table["x"].sum())}, tables)


class Abstains(RequesterStrategy):
    """Bids nothing (a requester out of budget): its jobs stay out of the market."""

    name = "abstains"
    summary = "bids 0 for every job"

    def bid(self, job: Job) -> float:
        return 0.0


class EchoTotals(Echo):
    """Echo whose runs table holds each run's `total` too (so `runs.png` has a measure)."""

    name = "echo-totals"

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        result = super().run(config, runs, seed, steps)
        result.tables["runs"]["total"] = result.tables["runs"]["x"]
        return result


class Threads(Simulation):
    """Reports the numba threads its point ran with (how a sweep sized them)."""

    name = "threads"
    title = "a test simulation"
    parameters = (Parameter("value", 1.0, "float", "a number"),)

    def build(self, params: Mapping[str, Any]) -> Any:
        return dict(params)

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        import numba

        threads = numba.get_num_threads()
        table = pd.DataFrame([{"run": r, "threads": threads} for r in range(runs)])
        return PointTables({"threads": threads}, {"runs": table})
