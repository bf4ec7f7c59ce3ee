"""The registry of reproducible experiments behind `mercat reproduce NAME`.

An experiment is a function `(ExperimentContext) -> Section` that writes its CSV and PNG
files under `context.out_dir` and returns the report section describing them. Modules
that define experiments call `register` at import time; `_MODULES` lists those modules so
that the registry can import them on demand (keeping `mercat --help` fast).

Experiments outside mercat are plug-ins: an entry point in the group `mercat.experiments`
naming an `Experiment` (or a module that registers its experiments when imported), under the
experiment's name. They come after mercat's own, in name order, and are imported only when
asked for (`mercat reproduce NAME`, or `all`).
"""

from __future__ import annotations

import csv
import importlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mercat import plugins
from mercat.errors import PluginError, UnknownNameError
from mercat.files import write_text_atomic
from mercat.report.html import Section, section_from_dict, section_to_dict

# Modules that register experiments, in report order.
_MODULES = (
    "mercat.scenarios.experiments_ruin",
    "mercat.scenarios.experiments_collective",
    "mercat.scenarios.experiments_adversaries",
    "mercat.auctioneer.experiments",
    "mercat.scenarios.experiments_posted_price",
    "mercat.scenarios.experiments_cloudchain",
    "mercat.storage.experiments",
    "mercat.privacy.experiments",
)


@dataclass(frozen=True)
class ExperimentContext:
    out_dir: Path
    quick: bool = False
    runs: int | None = None  # None: the experiment's own default (the seed's value)
    seed: int = 1
    show_progress: bool = True
    # the engine of seed 000's collective simulations (Table I, Fig. 4, Fig. 5):
    # `mercat.scenarios.collective_sim.ENGINES`
    engine: str = "fast"


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Write an experiment's table (a header, then one line per row); returns the file name,
    which is how a report `Table` links to its CSV."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path.name


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    description: str
    run: Callable[[ExperimentContext], Section]


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in _REGISTRY and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"experiment {experiment.name!r} registered twice")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load() -> dict[str, Experiment]:
    """mercat's own experiments (imported on demand) and those registered so far, in report
    order: by their module's place in `_MODULES` (whichever module was imported first), then
    the others in the order they registered."""
    for module in _MODULES:
        importlib.import_module(module)
    place = {module: i for i, module in enumerate(_MODULES)}
    ordered = sorted(_REGISTRY.values(), key=lambda e: place.get(e.run.__module__, len(_MODULES)))
    return {e.name: e for e in ordered}


def _plugin_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in plugins.entry_points(plugins.GROUPS["experiment"])}


def _load_plugin(ep: Any) -> Experiment:
    """The experiment an entry point names (an `Experiment`, or a module registering it)."""
    target = plugins.load_entry_point(ep)
    if isinstance(target, Experiment):
        if target.name != ep.name:
            raise PluginError(f"{plugins.origin(ep)} names an experiment called {target.name!r}")
        return register(target)
    if ep.name not in _REGISTRY:
        raise PluginError(
            f"{plugins.origin(ep)} is neither an Experiment nor a module registering "
            f"experiment {ep.name!r}"
        )
    return _REGISTRY[ep.name]


def experiments() -> dict[str, Experiment]:
    """All experiments, in report order (plug-ins imported)."""
    known = _load()
    for name, ep in _plugin_entry_points().items():
        if name not in known:
            _load_plugin(ep)
    return _load()


def get(name: str) -> Experiment:
    known = _load()
    if name in known:
        return known[name]
    ep = _plugin_entry_points().get(name)
    if ep is None:
        names = [*known, *(n for n in _plugin_entry_points() if n not in known)]
        raise UnknownNameError("experiment", name, [*names, "all"])
    return _load_plugin(ep)


def run_experiment(name: str, context: ExperimentContext) -> Section:
    """Run one experiment into `out_dir/name/`, time it, and save its section there.

    The experiment names its files relative to its own directory; the returned section
    names them relative to `out_dir`, where the report lives.
    """
    experiment = get(name)
    sub = replace(context, out_dir=context.out_dir / name)
    sub.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    section = experiment.run(sub)
    section = replace(
        section,
        seconds=time.perf_counter() - start,
        quick=context.quick,
        rng_seed=context.seed,
        figures=tuple(replace(f, path=f"{name}/{f.path}") for f in section.figures),
        tables=tuple(replace(t, csv=f"{name}/{t.csv}" if t.csv else None) for t in section.tables),
    )
    write_text_atomic(  # a section half-written would stop every later report
        sub.out_dir / "section.json", json.dumps(section_to_dict(section), indent=2, default=_plain)
    )
    return section


def _plain(value: object) -> object:
    """JSON fallback for numpy scalars and other number-likes in facts and table rows."""
    if hasattr(value, "item"):
        return value.item()  # type: ignore[union-attr]
    return str(value)


def saved_sections(out_dir: Path) -> list[Section]:
    """Sections saved under `out_dir` by earlier runs, in registry order."""
    sections = []
    names = [*_load(), *(n for n in _plugin_entry_points() if n not in _REGISTRY)]
    for name in names:
        path = out_dir / name / "section.json"
        if path.exists():
            sections.append(section_from_dict(json.loads(path.read_text(encoding="utf-8"))))
    return sections
