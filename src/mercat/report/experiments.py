"""The registry of reproducible experiments behind `mercat reproduce NAME`.

An experiment is a function `(ExperimentContext) -> Section` that writes its CSV and PNG
files under `context.out_dir` and returns the report section describing them. Modules
that define experiments call `register` at import time; `_MODULES` lists those modules so
that the registry can import them on demand (keeping `mercat --help` fast).
"""

from __future__ import annotations

import csv
import importlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mercat.errors import UnknownNameError
from mercat.report.html import Section, section_from_dict, section_to_dict

# Modules that register experiments, in report order.
_MODULES = (
    "mercat.scenarios.experiments_ruin",
    "mercat.scenarios.experiments_collective",
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
    for module in _MODULES:
        importlib.import_module(module)
    return _REGISTRY


def experiments() -> dict[str, Experiment]:
    """All experiments, in report order."""
    return dict(_load())


def get(name: str) -> Experiment:
    known = _load()
    if name not in known:
        raise UnknownNameError("experiment", name, [*known, "all"])
    return known[name]


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
        figures=tuple(replace(f, path=f"{name}/{f.path}") for f in section.figures),
        tables=tuple(replace(t, csv=f"{name}/{t.csv}" if t.csv else None) for t in section.tables),
    )
    (sub.out_dir / "section.json").write_text(
        json.dumps(section_to_dict(section), indent=2, default=_plain), encoding="utf-8"
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
    for name in _load():
        path = out_dir / name / "section.json"
        if path.exists():
            sections.append(section_from_dict(json.loads(path.read_text(encoding="utf-8"))))
    return sections
