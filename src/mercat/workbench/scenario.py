"""Scenario files: one simulation, its parameters, a sweep over them, A/B variants, output.

A scenario is a TOML file (docs/workbench.md has the full reference):

    [scenario]
    name = "collective-sweep"
    simulation = "collective"      # a registered simulation (mercat scenario simulations)
    runs = 20                      # Monte Carlo runs per point
    seed = 1                       # every point starts from it (common random numbers)

    [parameters]                   # fixed for every point; anything unset keeps its default
    tasks = 2000

    [grid]                         # swept: the Cartesian product of these lists
    stake = [2, 5, 10]

    [[cases]]                      # swept: explicit parameter sets (Table I's nine columns)
    assets = 10

    [variants.coll-stake]          # A/B: every point runs under each variant
    mechanism = "coll-stake"

    [output]
    formats = ["parquet", "csv"]

The points are every case × every grid combination × every variant, in that order (variants
innermost, so an A/B pair sits side by side); a point's parameters are the simulation's
defaults, then `[parameters]`, the case, the grid values, the variant. Table-valued
parameters (a mechanism's `options`) merge key by key; `options.tick` names one key of one,
in every table (a grid sweeps `options.tick = [0.01, 0.001]`).

Every point is checked before anything runs: an unknown table or key, a value of the wrong
type, a grid over a parameter the simulation does not have, or a point the simulation
refuses is one `ScenarioError` naming the file, the table and the key.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mercat.errors import MercatError, ScenarioError, UnknownNameError
from mercat.workbench.simulation import INT64, Parameter, Simulation, simulation

MAX_FILE_BYTES = 1 << 20
"""A scenario file is text a person wrote: at most 1 MiB."""

MAX_POINTS = 100_000
"""More points than this is a mistake in a grid (a sweep of them would take days)."""

MAX_RUNS = 100_000
"""Monte Carlo runs of one point: more is a typo (runs = 1e12), not a study."""

FORMATS = ("parquet", "csv")
_SCENARIO_KEYS = ("name", "description", "simulation", "runs", "seed", "plugins")
_OUTPUT_KEYS = ("formats", "steps", "step_every")
_TABLES = ("scenario", "parameters", "grid", "cases", "variants", "output")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_HUGE_INTEGER = "an integer of more than 4,300 digits (TOML's integers have 64 bits)"
COMMON = (
    Parameter("runs", 10, "int", "Monte Carlo runs per point", minimum=1, maximum=MAX_RUNS),
    Parameter("seed", 1, "int", "seed of the point's runs", minimum=0),
)
"""Parameters every simulation takes (their defaults come from [scenario])."""


@dataclass(frozen=True)
class Output:
    """What a sweep writes: table formats; per-step tables, keeping every `step_every`-th
    step (0: the simulation's own default)."""

    formats: tuple[str, ...] = FORMATS
    steps: bool = True
    step_every: int = 0


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its number, labels, full parameters and what varies."""

    index: int
    variant: str | None
    case: str | None
    params: dict[str, Any]
    design: dict[str, Any]  # the parameters the grid, the cases and the variants set
    key: str  # from the simulation, the parameters and the per-point output settings


@dataclass(frozen=True)
class Scenario:
    """A checked scenario file."""

    path: str
    text: str
    name: str
    description: str
    simulation: Simulation
    simulation_ref: str  # as the file names it (a name, or module:Class), for the workers
    plugins: tuple[str, ...]
    parameters: dict[str, Any]
    grid: dict[str, list[Any]]
    cases: tuple[tuple[str, dict[str, Any]], ...]
    variants: dict[str, dict[str, Any]]
    output: Output
    overrides: dict[str, Any] = field(default_factory=dict)  # --set on the command line
    points: tuple[Point, ...] = field(default=(), repr=False)

    @property
    def swept_columns(self) -> list[str]:
        """The parameters the cases and the grid sweep (the variants' are named by them)."""
        seen: dict[str, None] = {}
        for _, values in self.cases:
            seen.update(dict.fromkeys(values))
        seen.update(dict.fromkeys(self.grid))
        return list(seen)

    @property
    def design_columns(self) -> list[str]:
        """The parameters that vary over points, in the order they are written."""
        seen: dict[str, None] = {}
        for _, values in self.cases:
            seen.update(dict.fromkeys(values))
        seen.update(dict.fromkeys(self.grid))
        for values in self.variants.values():
            seen.update(dict.fromkeys(values))
        return list(seen)


def read_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read and check a scenario file (module docstring). `overrides` replace parameters
    (those of `[parameters]`, `runs` and `seed`), as `mercat sweep --set KEY=VALUE` does: a
    smaller trial of the same scenario; a parameter the scenario sweeps cannot be set."""
    return parse_scenario(read_text(path), str(path), overrides)


def read_text(path: str | Path) -> str:
    """The text of a scenario file: at most 1 MiB of UTF-8, or a `ScenarioError`."""
    where = str(path)
    try:
        # one byte past the bound, never more: a pipe or a device (/dev/zero) has no size
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{where}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{where}: more than 1 MiB; a scenario file holds at most 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{where}: not UTF-8 text") from None
    # an editor's byte-order mark (Windows Notepad) is not part of the TOML
    return text.removeprefix("\ufeff")


def parse_scenario(
    text: str, where: str = "<scenario>", overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Check a scenario given as TOML text; `where` names it in messages."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise ScenarioError(f"{where}: a scenario file holds at most 1 MiB")
    document = toml_document(text, where)
    try:
        return _Checker(where, document, text, dict(overrides or {})).scenario()
    except ScenarioError as exc:  # a name or value of 500,000 characters, echoed, is no line
        raise ScenarioError(_clip(str(exc))) from None


def toml_document(text: str, where: str) -> dict[str, Any]:
    """The TOML document of a scenario's text, or one `ScenarioError` naming `where`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ScenarioError(f"{where}: nested too deeply") from None
    except ValueError:  # tomllib's int() of more than 4,300 digits (Python's own limit)
        raise ScenarioError(f"{where}: {_HUGE_INTEGER}") from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` from the command line: VALUE read as a TOML value (3, 0.5, true, "x",
    [1, 2]) and kept as a string when it is not one."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set must look like KEY=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    except RecursionError:
        raise ScenarioError(f"{key}=...: nested too deeply") from None
    except ValueError:
        raise ScenarioError(f"{key}=...: {_HUGE_INTEGER}") from None
    return key, parsed


class _Checker:
    """Turns a parsed document into a `Scenario`, naming the table and key of each error."""

    def __init__(
        self, where: str, document: dict[str, Any], text: str, overrides: dict[str, Any]
    ) -> None:
        self.where = where
        self.document = document
        self.text = text
        self.overrides = overrides

    def fail(self, table: str, key: str | None, message: str) -> ScenarioError:
        at = f"[{table}]" + (f" {key}" if key is not None else "")
        return ScenarioError(f"{self.where}: {at}: {message}")

    def scenario(self) -> Scenario:
        unknown = [k for k in self.document if k not in _TABLES]
        if unknown:
            raise ScenarioError(
                f"{self.where}: unknown table [{unknown[0]}]; "
                + _suggest(unknown[0], _TABLES, "[{}]")
                + "a scenario has "
                + ", ".join(f"[{t}]" for t in _TABLES)
            )
        head = self.table("scenario", required=True)
        self.known_keys("scenario", head, _SCENARIO_KEYS)
        name = self.string("scenario", "name", head.get("name", Path(self.where).stem))
        description = self.string("scenario", "description", head.get("description", ""))
        if "simulation" not in head:
            raise self.fail("scenario", "simulation", "missing: which simulation to run")
        plugins = head.get("plugins", [])
        if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
            raise self.fail("scenario", "plugins", "must be a list of module names")
        _import_plugins(plugins, lambda m: self.fail("scenario", "plugins", m))
        reference = self.string("scenario", "simulation", head["simulation"])
        try:
            sim = simulation(reference)
        except UnknownNameError as exc:
            raise self.fail(
                "scenario",
                "simulation",
                f"unknown simulation {exc.name!r}; {_suggest(exc.name, exc.known)}"
                f"known: {', '.join(exc.known)}",
            ) from None
        except MercatError as exc:
            raise self.fail("scenario", "simulation", str(exc)) from None
        self.schema = {p.name: p for p in (*COMMON, *sim.parameters)}
        self.defaults = {p.name: p.default for p in sim.parameters}
        for common in COMMON:
            value = head.get(common.name, common.default)
            self.defaults[common.name] = self.value("scenario", common.name, value)

        parameters = self.layer("parameters", self.table("parameters"))
        for key in ("runs", "seed"):
            if key in parameters and key in head:
                raise self.fail("parameters", key, "set in [scenario] already")
        grid = self.grid(self.table("grid"))
        cases = self.cases()
        variants = self.variants()
        self.no_overlap(grid, cases, variants)
        if self.overrides:
            forced = self.layer("--set", self.overrides)
            swept = set(grid) | {k for _, c in cases for k in c}
            swept |= {k for v in variants.values() for k in v}
            for key in forced:
                if key in swept:
                    raise ScenarioError(
                        f"{self.where}: --set {key}: the scenario sweeps it; edit the file"
                    )
            parameters = {**parameters, **forced}
        output = self.output(self.table("output"))
        scenario = Scenario(
            path=self.where,
            text=self.text,
            name=name,
            description=description,
            simulation=sim,
            simulation_ref=reference,
            plugins=tuple(plugins),
            parameters=parameters,
            grid=grid,
            cases=cases,
            variants=variants,
            output=output,
            overrides=dict(self.overrides),
        )
        return replace(scenario, points=tuple(self.points(scenario)))

    # --- tables -----------------------------------------------------------------------

    def table(self, name: str, required: bool = False) -> dict[str, Any]:
        value = self.document.get(name)
        if value is None:
            if required:
                raise ScenarioError(f"{self.where}: missing table [{name}]")
            return {}
        if not isinstance(value, dict):
            raise ScenarioError(f"{self.where}: [{name}] must be a table")
        return value

    def known_keys(self, table: str, values: Mapping[str, Any], known: tuple[str, ...]) -> None:
        for key in values:
            if key not in known:
                raise self.fail(
                    table, key, f"unknown key; {_suggest(key, known)}known: {', '.join(known)}"
                )

    def string(self, table: str, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail(table, key, f"must be a string, got {value!r}")
        return value

    def layer(self, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """A table of parameter values, flattened (`options.tick`) and type-checked."""
        flat: dict[str, Any] = {}
        for key, value in values.items():
            for name, item in self.flatten(table, key, value):
                self.once(table, name, flat)
                flat[name] = self.value(table, name, item)
        return flat

    def once(self, table: str, name: str, seen: Mapping[str, Any]) -> None:
        """Refuse an option named twice: TOML reads `options.tick` as a key of the table
        `options` and `"options.tick"` as a key of its own, both this one option."""
        if name in seen:
            raise self.fail(table, name, f'given twice: {name} and "{name}" are one option')

    def flatten(self, table: str, key: str, value: Any) -> list[tuple[str, Any]]:
        """`key = value` as flat names: a table-valued parameter's entries become
        `param.entry`; a dotted name must start with a table-valued parameter."""
        head, dot, _ = key.partition(".")
        parameter = self.schema.get(head)
        if parameter is None:
            raise self.fail(
                table,
                key,
                f"unknown parameter of simulation {self.simulation_name!r}; "
                + _suggest(head, list(self.schema))
                + "known: "
                + ", ".join(self.schema),
            )
        if parameter.kind != "table":
            if dot or isinstance(value, dict):
                raise self.fail(table, key, f"{head} is not a table of options")
            return [(key, value)]
        if dot:
            return [(key, value)]
        if not isinstance(value, dict):
            raise self.fail(table, key, f"must be a table of options, got {value!r}")
        return [(f"{key}.{k}", v) for k, v in value.items()]

    @property
    def simulation_name(self) -> str:
        return str(self.table("scenario").get("simulation"))

    def value(self, table: str, name: str, value: Any) -> Any:
        """One parameter value, checked against its declared kind."""
        parameter = self.schema[name.partition(".")[0]]
        if "." in name:  # an option of a table parameter: the simulation checks it
            if isinstance(value, dict | list) and _depth(value) > 8:
                raise self.fail(table, name, "nested too deeply")
            if not _fits_int64(value):  # the option is a column of the result tables
                raise self.fail(
                    table, name, "holds an integer past 64 bits (from -2^63 to 2^63 - 1)"
                )
            return value
        try:
            return parameter.coerce(value)
        except MercatError as exc:
            raise self.fail(table, name, str(exc)) from None

    def grid(self, values: Mapping[str, Any]) -> dict[str, list[Any]]:
        grid: dict[str, list[Any]] = {}
        for key, value in values.items():
            entries = self.flatten("grid", key, value)
            for name, items in entries:
                self.once("grid", name, grid)
                if not isinstance(items, list) or not items:
                    raise self.fail("grid", name, "must be a non-empty list of values")
                checked = [self.value("grid", name, item) for item in items]
                if len({_canonical(v) for v in checked}) != len(checked):
                    raise self.fail("grid", name, "lists a value twice")
                grid[name] = checked
        return grid

    def cases(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        raw = self.document.get("cases", [])
        if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
            raise ScenarioError(f"{self.where}: cases must be written as [[cases]] tables")
        cases = []
        labels: set[str] = set()
        for i, case in enumerate(raw):
            table = f"cases #{i + 1}"
            label = case.get("label", str(i + 1))
            if not isinstance(label, str) or not _NAME.fullmatch(label):
                raise self.fail(table, "label", f"must be a name without spaces, got {label!r}")
            if label in labels:
                raise self.fail(table, "label", f"{label!r} is taken by another case")
            labels.add(label)
            values = self.layer(table, {k: v for k, v in case.items() if k != "label"})
            if not values:
                raise self.fail(table, None, "sets no parameter")
            cases.append((label, values))
        keys = [set(values) for _, values in cases]
        if keys and any(k != keys[0] for k in keys):
            raise ScenarioError(
                f"{self.where}: every [[cases]] table must set the same parameters "
                f"(the first sets {', '.join(sorted(keys[0]))})"
            )
        return tuple(cases)

    def variants(self) -> dict[str, dict[str, Any]]:
        raw = self.table("variants")
        variants = {}
        for name, values in raw.items():
            table = f"variants.{name}"
            if not _NAME.fullmatch(name):
                raise ScenarioError(f"{self.where}: [{table}]: a variant's name has no spaces")
            if not isinstance(values, dict):
                raise ScenarioError(f"{self.where}: [{table}] must be a table")
            variants[name] = self.layer(table, values)
        return variants

    def no_overlap(
        self,
        grid: dict[str, list[Any]],
        cases: tuple[tuple[str, dict[str, Any]], ...],
        variants: dict[str, dict[str, Any]],
    ) -> None:
        case_keys = set(cases[0][1]) if cases else set()
        for key in grid:
            if key in case_keys:
                raise self.fail("grid", key, "is set by the [[cases]] too; set it in one place")
        for name, values in variants.items():
            for key in values:
                if key in grid or key in case_keys:
                    where = "the grid" if key in grid else "the [[cases]]"
                    raise self.fail(f"variants.{name}", key, f"is swept by {where} already")

    def output(self, values: Mapping[str, Any]) -> Output:
        self.known_keys("output", values, _OUTPUT_KEYS)
        formats = values.get("formats", list(FORMATS))
        if (
            not isinstance(formats, list)
            or not formats
            or any(f not in FORMATS for f in formats)
            or len(set(formats)) != len(formats)
        ):
            raise self.fail("output", "formats", f"must list some of {', '.join(FORMATS)}")
        steps = values.get("steps", True)
        if not isinstance(steps, bool):
            raise self.fail("output", "steps", f"must be true or false, got {steps!r}")
        every = values.get("step_every", 0)
        if isinstance(every, bool) or not isinstance(every, int) or not 0 <= every <= INT64[1]:
            raise self.fail(
                "output", "step_every", f"must be an integer from 0 to 2^63 - 1, got {every!r}"
            )
        return Output(tuple(formats), steps, every)

    # --- points -----------------------------------------------------------------------

    def points(self, scenario: Scenario) -> list[Point]:
        cases = scenario.cases or ((None, {}),)
        grid_keys = list(scenario.grid)
        variants = list(scenario.variants.items()) or [(None, {})]
        # counted from the lengths, before the product is built: 5 lists of 1,000 values
        # make 10^15 points, which would fill the memory before they could be counted
        total = len(cases) * math.prod(len(v) for v in scenario.grid.values()) * len(variants)
        if total > MAX_POINTS:
            raise ScenarioError(
                f"{self.where}: {total:,} points; a sweep holds at most {MAX_POINTS:,}"
            )
        combos = list(itertools.product(*scenario.grid.values()))
        sim = scenario.simulation
        step_every = scenario.output.step_every or sim.default_step_every
        points: list[Point] = []
        by_key: dict[str, str] = {}
        for label, case in cases:
            for combo in combos:
                for variant, overrides in variants:
                    flat = {
                        **self.defaults,
                        **scenario.parameters,
                        **case,
                        **dict(zip(grid_keys, combo, strict=True)),
                        **overrides,
                    }
                    design = {
                        **case,
                        **dict(zip(grid_keys, combo, strict=True)),
                        **overrides,
                    }
                    params = _nest(flat, self.schema)
                    index = len(points)
                    where = _describe(index, label, variant, design)
                    try:
                        sim.build(params)
                    except MercatError as exc:
                        raise self.attribute(exc, scenario, label, variant, design, where) from None
                    key = point_key(sim.name, params, scenario.output.steps, step_every)
                    if key in by_key:  # the same run twice: it would be stored once
                        raise ScenarioError(
                            f"{self.where}: {where} runs the same parameters as "
                            f"{by_key[key]}; two variants or cases that set the same values "
                            "make one point, not two"
                        )
                    by_key[key] = where
                    points.append(Point(index, variant, label, params, design, key))
        return points

    def attribute(
        self,
        exc: MercatError,
        scenario: Scenario,
        label: str | None,
        variant: str | None,
        design: dict[str, Any],
        where: str,
    ) -> ScenarioError:
        """Name the table and key behind a point the simulation refuses, where one value
        alone, on top of the fixed parameters, is refused for the same reason; else name
        the point."""
        sim = scenario.simulation
        base = {**self.defaults, **scenario.parameters}
        try:
            sim.build(_nest(base, self.schema))
        except MercatError:
            return self.fail("parameters", None, str(exc))
        for key, value in design.items():
            try:
                sim.build(_nest({**base, key: value}, self.schema))
            except MercatError as alone:
                if str(alone) != str(exc):
                    continue  # refused alone, but not why the point is: the point says more
                if variant is not None and key in scenario.variants.get(variant, {}):
                    table = f"variants.{variant}"
                elif key in scenario.grid:
                    table = "grid"
                else:
                    table = f"cases {label}"
                return self.fail(table, f"{key} = {_show(value)}", str(alone))
        return ScenarioError(f"{self.where}: {where}: {exc}")


def _nest(flat: Mapping[str, Any], schema: Mapping[str, Parameter]) -> dict[str, Any]:
    """Flat parameters (`options.tick`) as the simulation takes them: table-valued
    parameters as dicts, merged entry by entry in order."""
    params: dict[str, Any] = {}
    for name, value in flat.items():
        head, dot, entry = name.partition(".")
        if dot:
            table = params.setdefault(head, dict(schema[head].default or {}))
            table[entry] = value
        elif schema[name].kind == "table":
            merged = dict(params.get(name, {}))
            merged.update(value or {})
            params[name] = merged
        else:
            params[name] = value
    return params


def point_key(simulation: str, params: Mapping[str, Any], steps: bool, step_every: int) -> str:
    """The name a point's results are stored under: a hash of what determines them (the
    simulation, every parameter, seed and runs included, and the per-step output)."""
    text = _canonical({"simulation": simulation, "params": params, "steps": [steps, step_every]})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _describe(index: int, case: str | None, variant: str | None, design: Mapping[str, Any]) -> str:
    parts = [f"case {case}"] if case is not None else []
    parts += [f"variant {variant}"] if variant is not None else []
    parts += [f"{k}={_show(v)}" for k, v in design.items()]
    return f"point {index}" + (f" ({', '.join(parts)})" if parts else "")


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)


_LONG_WORD = re.compile(r"\S{301,}")


def _clip(message: str) -> str:
    """`message` with each word past 300 characters (a key, a value, as the file has it)
    cut to its first 60."""
    return _LONG_WORD.sub(lambda m: f"{m.group()[:60]}... ({len(m.group()):,} characters)", message)


def _suggest(word: str, known: Any, shape: str = "{!r}") -> str:
    """`did you mean X? ` for the known name closest to a misspelt one, or nothing."""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1, cutoff=0.75)
    return f"did you mean {shape.format(close[0])}? " if close else ""


def _fits_int64(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_fits_int64(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits_int64(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return INT64[0] <= value <= INT64[1]
    return True


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _import_plugins(modules: list[str], fail: Any) -> None:
    """Import the modules a scenario lists (plug-ins that register themselves)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # foreign code: any failure is the scenario's error
            raise fail(f"cannot import {module!r} ({type(exc).__name__}: {exc})") from None


def import_plugins(modules: tuple[str, ...]) -> None:
    """Import a scenario's plug-in modules (in a worker, before its point runs)."""

    def fail(message: str) -> ScenarioError:
        return ScenarioError(message)

    _import_plugins(list(modules), fail)
