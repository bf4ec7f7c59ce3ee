"""Seed 002's 30-day CloudChain market, through a thin adapter over its public entry point.

The adapter knows only CloudChain's public names: `CloudChainConfig` and
`default_providers(community)` (mercat.scenarios.cloudchain_config) and `simulate(config,
seed)` (mercat.scenarios.cloudchain). Its parameters are the config's
scalar fields (whatever they are: read from the dataclass), plus `community`, the number of
community nodes beside the five clouds. Its tables are read off the result the same way:

- `runs`: every scalar field and property of the result (throughput, jobs, fairness, SLA
  compliance, ...), one row per run;
- `steps`: every per-hour array, one row per run and hour (every `step_every`-th and the
  last);
- `providers`: every per-provider array (tokens, deliveries, utilization, ...), one row per
  run and provider.

Which array runs per hour and which per provider is read off one small run whose hours,
providers, requesters and groups all differ in number, never off a point's own sizes (which
may coincide).

Run 0 of a point is `mercat simulate cloudchain --seed SEED`; run r > 0 uses a seed derived
from (seed, r).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mercat.workbench.simulation import Parameter, PointTables, Simulation, Steps, run_seed

_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


def _module() -> Any:
    """CloudChain's public names: the configuration in `cloudchain_config`, `simulate` in
    `cloudchain` (where `mercat simulate cloudchain` finds them)."""
    from types import SimpleNamespace

    from mercat.scenarios import cloudchain, cloudchain_config

    return SimpleNamespace(
        CloudChainConfig=cloudchain_config.CloudChainConfig,
        default_providers=cloudchain_config.default_providers,
        simulate=cloudchain.simulate,
    )


def _parameters() -> tuple[Parameter, ...]:
    """The config's scalar fields as parameters (read when the registry lists them)."""
    config = _module().CloudChainConfig
    found = [Parameter("community", 23, "int", "community nodes beside the 5 clouds", minimum=0)]
    for f in dataclasses.fields(config):
        default = f.default
        kind = _KINDS.get(type(default))
        if kind is not None:
            found.append(Parameter(f.name, default, kind, f"CloudChainConfig.{f.name}"))
    return tuple(found)


class CloudChainSimulation(Simulation):
    """Seed 002's month of clouds and community nodes: tokens, throughput, fairness."""

    name = "cloudchain"
    title = "Seed 002 (CloudChain): the 30-day market of cloud and community providers"
    step = "hour"
    headline = ("jain_fairness", "sla_compliance")
    parameters: tuple[Parameter, ...] = ()

    def __init__(self) -> None:
        self.parameters = _parameters()  # type: ignore[misc]

    def build(self, params: Mapping[str, Any]) -> Any:
        cc = _module()
        fields = {k: v for k, v in params.items() if k not in ("community", "runs", "seed")}
        return cc.CloudChainConfig(**fields, providers=cc.default_providers(params["community"]))

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        cc = _module()
        runs_rows, hours, providers = [], [], []
        names = [p.name for p in config.providers]
        kinds = _array_kinds()
        for r in range(runs):
            result = cc.simulate(config, seed=run_seed(seed, r))
            scalars, arrays = _read(result)
            runs_rows.append({"run": r, **scalars})
            per_hour = {k: v for k, v in arrays.items() if kinds.get(k) == "hour"}
            per_provider = {k: v for k, v in arrays.items() if kinds.get(k) == "provider"}
            for h in steps.kept(config.rounds):
                hours.append({"run": r, "hour": h + 1, **{k: v[h] for k, v in per_hour.items()}})
            for i, name in enumerate(names):
                providers.append(
                    {"run": r, "provider": name, **{k: v[i] for k, v in per_provider.items()}}
                )
        table = pd.DataFrame(runs_rows)
        summary = {
            k: float(table[k].mean()) for k in table.columns if k != "run" and _numeric(table[k])
        }
        tables = {"runs": table, "providers": pd.DataFrame(providers)}
        if steps.keep:
            tables["steps"] = pd.DataFrame(hours)
        return PointTables(summary, tables)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


@functools.cache
def _array_kinds() -> dict[str, str]:
    """Which of the result's arrays run per hour and which per provider, by name. A point's
    own sizes cannot tell (28 requesters beside 5 clouds and 23 community nodes make
    per-requester arrays as long as per-provider ones), so they are read off one small run
    whose hours, providers, requesters and groups all differ in number."""
    cc = _module()
    config = cc.CloudChainConfig(
        requesters=11, days=1, rounds_per_day=5, providers=cc.default_providers(2)
    )
    sizes = {config.rounds: "hour", len(config.providers): "provider"}
    others = {config.requesters, len(config.groups)}
    if len(sizes) != 2 or others & set(sizes):
        raise AssertionError("the probe's sizes must differ")  # pragma: no cover
    _, arrays = _read(cc.simulate(config, seed=0))
    return {name: sizes[len(v)] for name, v in arrays.items() if len(v) in sizes}


def _read(result: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The result's scalar and 1-d numeric values (fields and properties), by name."""
    names = [f.name for f in dataclasses.fields(result)]
    names += [n for n, v in vars(type(result)).items() if isinstance(v, property)]
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        if name in ("config", "seed"):
            continue
        value = getattr(result, name)
        if isinstance(value, bool | np.bool_):
            scalars[name] = bool(value)
        elif isinstance(value, int | np.integer):
            scalars[name] = int(value)
        elif isinstance(value, float | np.floating):
            scalars[name] = float(value) if math.isfinite(value) else math.nan
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "biuf":
            arrays[name] = value
    return scalars, arrays
