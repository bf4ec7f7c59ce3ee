"""A results directory: what a sweep writes there, and how each point's results are kept.

    DIR/.sweep.lock              the running sweep's lock (it holds that sweep's pid)
    DIR/scenario.toml            the scenario, as given
    DIR/manifest.json            mercat's version, the scenario's name and simulation, every
                                 point (number, key, labels, what varies), whether complete
    DIR/points/KEY/point.json    one point: its parameters, summary, wall time, version
    DIR/points/KEY/TABLE.parquet its tables (runs, steps, ...)
    DIR/points.parquet|csv       the combined tables: one row per point,
    DIR/runs.parquet|csv         per run, per step, ... (the sweep writes them at the end)

The per-run and per-step tables start with the point's number, its case and variant and
the parameters the sweep varies (a parameter named like a column of the table itself is
written `param_NAME` there).

A point's directory is written whole or not at all: into a temporary directory beside it,
then renamed (atomic on one file system), so an interrupted sweep leaves finished points and
nothing half-written; the next sweep skips the finished ones (their key names the simulation
and every parameter, seed and runs included). Combined tables are written to a temporary
file and renamed too; a sweep that finishes removes those an earlier sweep of the directory
wrote and its own scenario does not (another table or format), so that the directory holds
one sweep's tables. Each Parquet file carries mercat's version and the scenario's name in
its schema metadata (key `mercat`).

What is read back is checked first (`read_manifest`, `read_point`, `read_table`): a file
edited or truncated by hand is one `DamagedResultsError` naming it and what to do, never a
traceback from the JSON or Parquet reader.

One sweep at a time writes a directory: it holds an exclusive lock (`flock`) on
`DIR/.sweep.lock` while it runs, and a second sweep of the directory fails at once naming
the holder's pid. The kernel drops the lock when its holder exits, however it exits; the
file itself stays (removing it would let a third sweep lock a new file while a second
still holds the old one).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mercat.errors import InvalidParameterError, MercatError
from mercat.files import TMP_PREFIX, write_text_atomic
from mercat.untrusted import parse_json, shown
from mercat.workbench.scenario import FORMATS, Point, Scenario
from mercat.workbench.simulation import PointTables

MANIFEST = "manifest.json"
SCENARIO = "scenario.toml"
POINTS = "points"
LOCK = ".sweep.lock"
_TMP = TMP_PREFIX
_KEY = re.compile(r"[0-9a-f]{16}")  # a point's key (mercat.workbench.scenario.point_key)
_TABLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a table's name, a file's stem


class ResultsInUseError(MercatError):
    """Another sweep is writing the results directory (module docstring)."""


class DamagedResultsError(InvalidParameterError):
    """A file of a results directory that mercat did not write as it is: edited, truncated,
    or from something else (module docstring)."""


def mercat_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mercat")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def point_dir(out: Path, point: Point) -> Path:
    return out / POINTS / point.key


def is_done(out: Path, point: Point) -> bool:
    return (point_dir(out, point) / "point.json").is_file()


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the directory's sweep lock (module docstring), creating the directory; a
    `ResultsInUseError` at once if another sweep holds it. Check the directory first
    (`check`): a directory that is not for results must not gain a lock file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InvalidParameterError(f"cannot write results to {out}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsInUseError(
                f"{out} is being written by another sweep ({_holder(fd)}); wait for it to "
                "finish, or choose another --out"
            ) from None
        # the pid is for the message above; a holder that has not written it yet is rare
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "its pid not yet written"


def check(out: Path, scenario: Scenario) -> None:
    """Refuse a directory that is a file, holds something other than mercat results, or
    results of another simulation; reads only."""
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"{out} is a file; results go to a directory")
    if manifest.exists():
        earlier = read_manifest(out)
        if earlier.get("simulation") != scenario.simulation.name:
            raise InvalidParameterError(
                f"{out} holds results of a {shown(earlier.get('simulation'))} sweep; this scenario "
                f"runs {scenario.simulation.name!r}: choose another --out"
            )
    elif out.exists() and any(p.name not in (POINTS, LOCK) for p in out.iterdir()):
        raise InvalidParameterError(
            f"{out} exists and holds no mercat results; choose an empty or new directory"
        )


def prepare(out: Path, scenario: Scenario) -> None:
    """Create the directory (or reopen one a sweep of the same simulation wrote), record the
    scenario and an incomplete manifest, and drop what an interrupted write left. The
    caller holds the lock (`locked`)."""
    check(out, scenario)
    try:
        (out / POINTS).mkdir(parents=True, exist_ok=True)
        for stale in (out / POINTS).glob(_TMP + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in out.glob(_TMP + "*"):  # a combined table an interrupted write left
            if stale.is_file():
                stale.unlink(missing_ok=True)
        write_text_atomic(out / SCENARIO, scenario.text)
        write_manifest(out, scenario, complete=False)
    except OSError as exc:
        raise InvalidParameterError(f"cannot write results to {out}: {exc.strerror}") from None


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of `out`, checked for what mercat reads of it (its points' keys, the
    simulation, the lists of columns and plug-ins); a `DamagedResultsError` otherwise, or
    an `InvalidParameterError` where there is none."""
    path = out / MANIFEST
    try:
        manifest = _json(path.read_bytes())
    except FileNotFoundError:
        raise InvalidParameterError(f"{out}: no results of mercat sweep there") from None
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read it ({exc.strerror})") from None
    except DamagedResultsError:  # not JSON, not UTF-8, nested past MAX_DEPTH
        raise _damaged_manifest(path, "not JSON") from None
    if not isinstance(manifest, dict):
        raise _damaged_manifest(path, "not a JSON object")
    for key, kind, what in (
        ("simulation", str, "a name"),
        ("complete", bool, "true or false"),
        ("points", list, "a list"),
    ):
        if not isinstance(manifest.get(key), kind):
            raise _damaged_manifest(path, f"{key!r} is not {what}")
    for key in ("plugins", "design", "swept"):
        value = manifest.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _damaged_manifest(path, f"{key!r} is not a list of names")
    if not isinstance(manifest.get("simulation_ref", ""), str):
        raise _damaged_manifest(path, "'simulation_ref' is not a name")
    if not isinstance(manifest.get("overrides", {}), dict):
        raise _damaged_manifest(path, "'overrides' is not a table")
    for i, point in enumerate(manifest["points"]):
        if not isinstance(point, dict) or not _KEY.fullmatch(str(point.get("key"))):
            raise _damaged_manifest(path, f"point {i} has no key")
    return manifest


def _json(data: bytes) -> Any:
    """A file's JSON as `mercat.untrusted` parses outside text (a file edited by hand nested
    a thousand levels deep is no RecursionError); a `DamagedResultsError` otherwise."""
    return parse_json(data, what="the file", error=DamagedResultsError, max_bytes=None)


def _damaged_manifest(path: Path, why: str) -> DamagedResultsError:
    return DamagedResultsError(
        f"{path}: not a manifest mercat wrote ({why}); sweep into a new directory"
    )


def write_manifest(out: Path, scenario: Scenario, complete: bool) -> None:
    manifest = {
        "mercat_version": mercat_version(),
        "python": sys.version.split()[0],
        "scenario": scenario.name,
        "description": scenario.description,
        "simulation": scenario.simulation.name,
        "simulation_ref": scenario.simulation_ref,
        "plugins": list(scenario.plugins),
        "source": scenario.path,
        "overrides": scenario.overrides,
        "complete": complete,
        "output": {
            "formats": list(scenario.output.formats),
            "steps": scenario.output.steps,
            "step_every": scenario.output.step_every or scenario.simulation.default_step_every,
        },
        "design": scenario.design_columns,
        "swept": scenario.swept_columns,
        "points": [
            {
                "point": p.index,
                "key": p.key,
                "variant": p.variant,
                "case": p.case,
                "design": p.design,
            }
            for p in scenario.points
        ],
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def write_point(out: Path, point: Point, result: PointTables, seconds: float) -> None:
    """Keep one point's results (atomically: module docstring)."""
    final = point_dir(out, point)
    if final.exists():
        return  # another sweep of the same directory finished it first
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP}{point.key}-", dir=out / POINTS))
    try:
        meta = {
            "point": point.index,
            "key": point.key,
            "variant": point.variant,
            "case": point.case,
            "params": point.params,
            "summary": result.summary,
            "tables": sorted(result.tables),
            "seconds": seconds,
            "mercat_version": mercat_version(),
        }
        for name, table in result.tables.items():
            table.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "point.json").write_text(
            json.dumps(meta, indent=2, default=_plain) + "\n", encoding="utf-8"
        )
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise


def read_point(out: Path, point: Point) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """A finished point's record and tables; a `DamagedResultsError` naming its directory
    where one was edited or truncated (removing it makes the next sweep recompute it)."""
    where = point_dir(out, point)

    def damaged(why: str) -> DamagedResultsError:
        return DamagedResultsError(
            f"{where}: a finished point's results, damaged ({why}); remove that directory "
            "and run the sweep again: it recomputes that point alone"
        )

    try:
        meta = _json((where / "point.json").read_bytes())
    except OSError as exc:
        raise damaged(f"point.json: {exc.strerror}") from None
    except DamagedResultsError:
        raise damaged("point.json is not JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("summary"), dict):
        raise damaged("point.json has no summary")
    names = meta.get("tables")
    if not isinstance(names, list) or not all(
        isinstance(n, str) and _TABLE.fullmatch(n) for n in names
    ):
        raise damaged("point.json does not list its tables")
    tables = {}
    for name in names:
        try:
            tables[name] = read_table(where / f"{name}.parquet")
        except DamagedResultsError:
            raise damaged(f"{name}.parquet cannot be read") from None
    return meta, tables


def read_table(path: Path) -> pd.DataFrame:
    """A table mercat wrote (Parquet, or CSV), or a `DamagedResultsError` naming the file."""
    import pyarrow as pa

    csv = path.suffix == ".csv"
    try:
        return pd.read_csv(path) if csv else pd.read_parquet(path)
    except OSError as exc:
        why = exc.strerror or ("not a whole CSV table" if csv else "not a whole Parquet file")
    except (ValueError, pa.ArrowException):  # truncated, edited, another format
        why = "not a whole CSV table" if csv else "not a whole Parquet file"
    raise DamagedResultsError(f"{path}: cannot read this table ({why}); run its sweep again")


# --- combined tables ------------------------------------------------------------------------


def flat_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as table columns: a table-valued one's entries become `name.entry`; lists
    and tables inside become JSON text."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            for key, item in value.items():
                flat[f"{name}.{key}"] = cell(item)
        else:
            flat[name] = cell(value)
    return flat


def cell(value: Any) -> Any:
    """A parameter's value as a table cell: lists and tables as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def combine(
    out: Path, scenario: Scenario, fresh: Mapping[str, PointTables] | None = None
) -> dict[str, pd.DataFrame]:
    """The combined tables of the points finished so far, in point order. `fresh` holds
    results this process computed (by key), so that they need not be read back."""
    fresh = fresh or {}
    labels = []
    if scenario.cases:
        labels.append("case")
    if scenario.variants:
        labels.append("variant")
    design = scenario.design_columns
    rows: list[dict[str, Any]] = []
    parts: dict[str, list[pd.DataFrame]] = {}
    for point in scenario.points:
        if point.key in fresh:
            summary, tables = fresh[point.key].summary, fresh[point.key].tables
        elif is_done(out, point):
            meta, tables = read_point(out, point)
            summary = meta["summary"]
        else:
            continue
        ident = {"point": point.index, **{k: getattr(point, k) for k in labels}}
        params = flat_params(point.params)
        row = {**ident, "key": point.key, **params}
        for measure, value in summary.items():
            if measure in row and row[measure] != value:
                raise InvalidParameterError(
                    f"simulation {scenario.simulation.name!r} reports a measure {measure!r} "
                    "that is also a parameter"
                )
            row.setdefault(measure, value)
        rows.append(row)
        lead = {**ident, **{k: params.get(k) for k in design}}
        for name, table in tables.items():
            # a parameter named like one of the table's own columns is `param_NAME` there
            front = pd.DataFrame(
                {(f"param_{k}" if k in table.columns else k): [v] * len(table)
                 for k, v in lead.items()}
            )  # fmt: skip
            parts.setdefault(name, []).append(
                pd.concat([front, table.reset_index(drop=True)], axis=1)
            )
    combined = {"points": pd.DataFrame(rows)}
    for name, frames in parts.items():
        combined[name] = pd.concat(frames, ignore_index=True)
    return combined


def write_tables(
    out: Path, scenario: Scenario, tables: Mapping[str, pd.DataFrame], formats: Iterable[str]
) -> list[Path]:
    """Write the combined tables in each format (atomically); returns the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    for name, frame in tables.items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            tmp = path.with_name(f"{_TMP}{path.name}")
            try:
                if fmt == "parquet":
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    tag = {
                        "mercat_version": mercat_version(),
                        "scenario": scenario.name,
                        "simulation": scenario.simulation.name,
                        "table": name,
                    }
                    metadata = {
                        **(table.schema.metadata or {}),
                        b"mercat": json.dumps(tag).encode(),
                    }
                    pq.write_table(table.replace_schema_metadata(metadata), tmp)
                else:
                    frame.to_csv(tmp, index=False)
                os.replace(tmp, path)
            finally:
                # a write that failed (a full disk) leaves no half-written table behind
                tmp.unlink(missing_ok=True)
            written.append(path)
    return written


def remove_stale_tables(out: Path, written: Iterable[Path]) -> list[Path]:
    """Remove the combined tables an earlier sweep of `out` wrote that this one did not (a
    table or a format its scenario no longer has): `load` would read them back as this
    sweep's. A file counts as a combined table when it is named like one (`points`, or a
    table the points hold, in a format mercat writes); anything else is left alone."""
    keep = set(written)
    removed = []
    for path in table_files(out):
        if path not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def table_files(out: Path) -> list[Path]:
    """The combined tables in `out`: files named like one (`points`, or a table the points
    hold) in a format mercat writes."""
    found = []
    for fmt in FORMATS:
        for path in sorted(out.glob(f"*.{fmt}")):
            if path.name.startswith(_TMP):
                continue
            named = glob.escape(path.stem)
            if path.stem == "points" or next((out / POINTS).glob(f"*/{named}.parquet"), None):
                found.append(path)
    return found


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()  # type: ignore[union-attr]
    return str(value)
