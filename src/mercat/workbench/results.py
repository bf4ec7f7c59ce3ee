"""A sweep's results, back as pandas DataFrames: `load(DIR)`.

    from mercat.workbench import load

    results = load("out/collective-sweep")
    results["runs"].groupby(["variant", "stake"])["removal_precision_pct"].mean()
    results.scenario["grid"]          # the scenario file, parsed
    results.version                   # the mercat that wrote them

The tables are read from Parquet (CSV if that is all there is). A sweep that did not finish
has no combined tables yet: `load(DIR, partial=True)` assembles the finished points'.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mercat.errors import InvalidParameterError, ScenarioError
from mercat.workbench import store


class Results(Mapping[str, pd.DataFrame]):
    """The tables of a results directory by name (`points`, `runs`, `steps`, ...), with the
    scenario, the manifest and the version of mercat that wrote them."""

    def __init__(
        self,
        out: Path,
        tables: dict[str, pd.DataFrame],
        manifest: dict[str, Any],
        text: str,
        scenario: dict[str, Any] | None = None,
    ) -> None:
        self.out = out
        self.tables = tables
        self.manifest = manifest
        self.scenario_text = text
        self.scenario: dict[str, Any] = (
            scenario if scenario is not None else tomllib.loads(text) if text else {}
        )

    @property
    def version(self) -> str:
        return str(self.manifest.get("mercat_version"))

    @property
    def simulation(self) -> str:
        return str(self.manifest.get("simulation"))

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            raise KeyError(f"no table {name!r} in {self.out}; tables: {', '.join(self.tables)}")
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {len(v)} rows" for k, v in self.tables.items())
        return f"Results({str(self.out)!r}, {self.simulation}, {shapes})"


def load(out: str | Path, *, partial: bool = False) -> Results:
    """The tables of a results directory written by `mercat sweep` (module docstring)."""
    out = Path(out)
    manifest = store.read_manifest(out)
    text, scenario = _scenario(out)
    if not manifest["complete"]:
        if not partial:
            done = sum(1 for p in manifest["points"] if (out / store.POINTS / p["key"]).is_dir())
            raise InvalidParameterError(
                f"{out}: the sweep has not finished ({done} of {len(manifest['points'])} "
                "points); run it again to finish, or load(..., partial=True)"
            )
        from mercat.workbench.scenario import parse_scenario

        checked = parse_scenario(text, str(out / store.SCENARIO), manifest.get("overrides"))
        return Results(out, store.combine(out, checked), manifest, text, scenario)
    files = store.table_files(out)  # not a file of the user's that lies beside them
    tables = {}
    names = ["points", *sorted({p.stem for p in files} - {"points"})]
    for name in names:
        parquet, csv = out / f"{name}.parquet", out / f"{name}.csv"
        if parquet in files:
            tables[name] = store.read_table(parquet)
        elif csv in files:
            tables[name] = store.read_table(csv)
    return Results(out, tables, manifest, text, scenario)


def _scenario(out: Path) -> tuple[str, dict[str, Any]]:
    """The scenario a results directory records: its text and its tables, or one error
    naming the file (read as a scenario file is: at most 1 MiB of UTF-8)."""
    from mercat.workbench.scenario import read_text, toml_document

    path = out / store.SCENARIO
    try:
        text = read_text(path)
    except ScenarioError as exc:
        raise store.DamagedResultsError(str(exc)) from None
    try:
        return text, toml_document(text, str(path))
    except ScenarioError as exc:  # mercat wrote valid TOML
        raise store.DamagedResultsError(f"{exc}; it was edited") from None
