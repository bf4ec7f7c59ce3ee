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

import json
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mercat.errors import InvalidParameterError
from mercat.workbench import store


class Results(Mapping[str, pd.DataFrame]):
    """The tables of a results directory by name (`points`, `runs`, `steps`, ...), with the
    scenario, the manifest and the version of mercat that wrote them."""

    def __init__(
        self, out: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any], text: str
    ) -> None:
        self.out = out
        self.tables = tables
        self.manifest = manifest
        self.scenario_text = text
        self.scenario: dict[str, Any] = tomllib.loads(text) if text else {}

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
    manifest_path = out / store.MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        text = (out / store.SCENARIO).read_text(encoding="utf-8")
    except (OSError, ValueError):
        raise InvalidParameterError(f"{out}: no results of mercat sweep there") from None
    if not manifest.get("complete"):
        if not partial:
            done = sum(1 for p in manifest["points"] if (out / store.POINTS / p["key"]).is_dir())
            raise InvalidParameterError(
                f"{out}: the sweep has not finished ({done} of {len(manifest['points'])} "
                "points); run it again to finish, or load(..., partial=True)"
            )
        from mercat.workbench.scenario import parse_scenario

        scenario = parse_scenario(text, str(out / store.SCENARIO), manifest.get("overrides"))
        return Results(out, store.combine(out, scenario), manifest, text)
    files = store.table_files(out)  # not a file of the user's that lies beside them
    tables = {}
    names = ["points", *sorted({p.stem for p in files} - {"points"})]
    for name in names:
        parquet, csv = out / f"{name}.parquet", out / f"{name}.csv"
        if parquet in files:
            tables[name] = pd.read_parquet(parquet)
        elif csv in files:
            tables[name] = pd.read_csv(csv)
    return Results(out, tables, manifest, text)
