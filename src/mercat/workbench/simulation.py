"""What a scenario can run: a `Simulation` is a small class with a `name`, its parameters and
one method, `run`, that turns a point's parameters into tidy tables.

mercat's simulations (`SIMULATIONS`, mercat.workbench.simulations): seed 000's collective
incentives (any engine), federated learning with differential privacy (seed 002), clearing
experiments (a generated market family cleared by any mechanism: seeds 001 and 003), a whole
marketplace through the round pipeline (`mercat market run`) and seed 002's 30-day
CloudChain market. Others are plug-ins (entry points in the group `mercat.simulations`).

A simulation returns, for one point, a `PointTables`: the point's summary (one row of the
points table) and its tables, by name: `runs` (one row per Monte Carlo run) and `steps`
(per run and step: per task window, round or hour), and any others it has (`providers`).
Every row depends only on the point's parameters and seed, never on timing, so the same
seeds give the same tables on every backend.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mercat.errors import InvalidParameterError
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry

KINDS = ("int", "float", "str", "bool", "bool?", "table")
"""Parameter kinds: `bool?` is true, false or "auto" (None: the simulation decides);
`table` is a TOML table of options, passed on as a dict."""

INT64 = (-(2**63), 2**63 - 1)
"""The integers a parameter may take: the result tables store them as 64-bit integers
(TOML's integers are 64-bit too, but Python's reader takes any)."""


@dataclass(frozen=True)
class Parameter:
    """One parameter of a simulation, as a scenario file sets it."""

    name: str
    default: Any
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None  # a size past which a point would run for days, or not fit

    def coerce(self, value: Any) -> Any:
        """`value` as this parameter takes it (an int for a float, say), or an error."""
        kind = self.kind
        if kind == "bool?":
            if value == "auto" or value is None:
                return None
            kind = "bool"
        if kind == "bool":
            if not isinstance(value, bool):
                raise InvalidParameterError(f"must be true or false, got {value!r}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParameterError(f"must be an integer, got {value!r}")
            if not INT64[0] <= value <= INT64[1]:
                raise InvalidParameterError(
                    f"must be a 64-bit integer (from -2^63 to 2^63 - 1), got {value}"
                )
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameterError(f"must be a number, got {value!r}")
            try:
                value = float(value)
            except OverflowError:  # an integer of 400 digits: past every float
                value = math.inf if value > 0 else -math.inf
            if not math.isfinite(value):
                raise InvalidParameterError(f"must be finite, got {value!r}")
        elif kind == "str":
            if not isinstance(value, str):
                raise InvalidParameterError(f"must be a string, got {value!r}")
            if self.choices and value not in self.choices:
                raise InvalidParameterError(
                    f"must be one of {', '.join(self.choices)}; got {value!r}"
                )
        elif kind == "table":
            if not isinstance(value, dict):
                raise InvalidParameterError(f"must be a table, got {value!r}")
            return dict(value)
        if self.minimum is not None and value < self.minimum:
            raise InvalidParameterError(f"must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidParameterError(f"must be at most {_number(self.maximum)}, got {value!r}")
        return value


def _number(bound: float) -> str:
    return f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"


@dataclass(frozen=True)
class Steps:
    """Per-step output: whether to write it, and every how many steps a row is kept (the
    last step is always kept: `kept`)."""

    keep: bool = True
    every: int = 1

    def kept(self, count: int) -> list[int]:
        """The steps (0-based) of `count` whose rows are kept: every `every`-th, and the last
        always, so that the table ends where the run ended and is never empty (`step_every`
        past the number of steps keeps the last one only)."""
        kept = list(range(self.every - 1, count, self.every))
        if count > 0 and (not kept or kept[-1] != count - 1):
            kept.append(count - 1)
        return kept


@dataclass
class PointTables:
    """One point's results: its summary and its tables (pandas DataFrames, by name)."""

    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


Progress = Callable[[int], None]


class Simulation(ABC):
    """A simulation a scenario can run (module docstring). Subclasses set the class
    attributes and write `build` (check a point's parameters, return its configuration)
    and `run` (run it `runs` times from `seed`)."""

    name: ClassVar[str]
    title: ClassVar[str]  # what it is, with the seed it comes from
    parameters: ClassVar[tuple[Parameter, ...]]
    step: ClassVar[str | None] = None  # the steps table's step column (task, round, hour)
    default_step_every: ClassVar[int] = 1
    headline: ClassVar[tuple[str, ...]] = ()  # summary measures `mercat plot` draws
    step_measures: ClassVar[tuple[str, ...]] = ()  # steps columns `mercat plot` draws

    @abstractmethod
    def build(self, params: Mapping[str, Any]) -> Any:
        """The point's configuration; a `MercatError` if the simulation refuses it."""

    @abstractmethod
    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        """Run `config` `runs` times from `seed`: the point's summary and tables."""

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


def run_seed(seed: int, run: int) -> int:
    """The seed of run `run` of a point whose seed is `seed`, for simulations that take one
    integer seed per run: run 0 uses the point's seed itself (so one run reproduces the
    command line's numbers), later runs seeds derived from (seed, run)."""
    if run == 0:
        return seed
    return int(np.random.SeedSequence([seed, run]).generate_state(1, np.uint64)[0] >> 1)


def mean_and_se(values: Any) -> tuple[float, float]:
    """The mean of per-run values and its standard error (NaN with one run)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), se


def _load_simulations() -> tuple[type[Simulation], ...]:
    from mercat.workbench import simulations

    return simulations.BUILTIN


class _Simulations(ClassRegistry[type[Simulation]]):
    """The registry, filled on first use (the simulations import heavy modules lazily)."""

    def __init__(self) -> None:
        super().__init__("simulation", (), group=GROUPS["simulation"], base=Simulation)
        self._ready = False

    def _fill(self) -> None:
        if not self._ready:
            self.defaults = _load_simulations()
            self._ready = True

    def names(self) -> list[str]:
        self._fill()
        return super().names()

    def get(self, name: str) -> type[Simulation]:
        self._fill()
        return super().get(name)

    def register(self, member: type[Simulation], *, replace: bool = False) -> type[Simulation]:
        self._fill()
        return super().register(member, replace=replace)


SIMULATIONS = _Simulations()
"""Every simulation by name: mercat's own, then the registered and the installed ones."""


def simulation(name: str) -> Simulation:
    """The simulation called `name` (or `module:Class`), ready to build and run points."""
    return SIMULATIONS.resolve(name)()
