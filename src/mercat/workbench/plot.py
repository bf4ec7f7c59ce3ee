"""The standard figures of a results directory: `mercat plot DIR`.

Whatever the simulation, a sweep's tables have the same shape, so three figures cover it
(each simulation names its headline measures and its per-step measures):

- `points.png`: each headline measure by case where the scenario lists `[[cases]]`, else
  against the first numeric parameter the sweep varies,
  one line per variant (and per value of the other varied parameters), with error bars of
  one standard error where the summary has them;
- `steps.png`: each per-step measure over the steps (tasks, rounds, hours), the mean over a
  point's runs, one line per point;
- `runs.png`: the spread of each headline measure over the runs of every point (box plots;
  A/B variants side by side).

A figure whose data the directory lacks (no per-step table, a single point) is left out.

Every line and box is drawn up to `MAX_LINES` lines and `MAX_BOXES` boxes a panel: past 20
lines the colours run along a colour map (in the points' order, so a swept value reads as
a gradient) and the legend takes several columns. Past the limits a figure is no longer
legible: the first ones are drawn, its title says how many of how many, and `warn` is told
(the command prints a `warning:` line); `where` (`mercat plot --where KEY=VALUE`) draws a
subset of the points.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mercat.errors import InvalidParameterError, MercatError
from mercat.files import TMP_PREFIX
from mercat.workbench import store
from mercat.workbench.results import Results, load

MAX_LINES = 60
"""Lines a panel draws: with a colour map and a legend in columns, 60 still tell apart."""
MAX_BOXES = 60
"""Box plots a panel draws (the figure widens with each: 60 make it about 80 cm wide)."""
_DISTINCT = 20  # up to this many lines take tab20's distinct colours, more a colour map


class PlotWarning(UserWarning):
    """A figure drew only part of its data (module docstring)."""


Warn = Callable[[str], None]


def plot_results(
    results_dir: str | Path,
    out: str | Path | None = None,
    *,
    where: Mapping[str, Any] | None = None,
    warn: Warn | None = None,
) -> list[Path]:
    """Write the standard figures of a results directory; returns their paths.

    `where` keeps the points whose column KEY (`variant`, `case`, a parameter) equals VALUE,
    for each pair; `warn(message)` is told of each figure that drew only part of its data
    (by default a `PlotWarning`)."""
    from mercat.workbench.scenario import import_plugins
    from mercat.workbench.simulation import simulation

    results = load(results_dir)
    if where:
        results = _select(results, where)
    try:  # the manifest names them: an edited one names the directory, not only the name
        import_plugins(tuple(results.manifest.get("plugins", ())))
        sim = simulation(results.manifest.get("simulation_ref") or results.simulation)
    except MercatError as exc:
        raise InvalidParameterError(f"{results_dir}: {exc}") from None
    told = warn or _warn
    out = Path(out) if out is not None else Path(results_dir) / "figures"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"cannot write figures to {out}: {exc.strerror}") from None
    # the variant's name stands for what it sets; the swept parameters label the rest
    design = [c for c in results.manifest.get("swept", []) if c in results["points"].columns]
    written = []
    for name, draw in (("points", _points), ("runs", _runs), ("steps", _steps)):
        figure = draw(results, sim, design, lambda what, name=name: told(f"{name}.png: {what}"))
        if figure is not None:
            path = out / f"{name}.png"
            _save(figure, path)
            written.append(path)
    return written


def _warn(message: str) -> None:
    warnings.warn(message, PlotWarning, stacklevel=3)


def _select(results: Results, where: Mapping[str, Any]) -> Results:
    """The results of the points whose columns equal `where`'s values; an error, before
    anything is drawn, for a column the points table lacks or a value no point has."""
    points = results["points"]
    keep = pd.Series(True, index=points.index)
    for key, value in where.items():
        if key not in points.columns:
            known = [c for c in ("case", "variant") if c in points.columns]
            known += [c for c in results.manifest.get("swept", []) if c in points.columns]
            raise InvalidParameterError(
                f"--where {key}: not a column of the points table; try "
                + (", ".join(known) or "a parameter of the scenario")
            )
        # a list or a table is a cell of JSON text (store.cell): compared as that text
        match = points[key] == store.cell(value)
        if not match.any():
            values = [str(v) for v in points[key].drop_duplicates().tolist()]
            shown = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
            raise InvalidParameterError(f"--where {key}={value}: no point has it; {key}: {shown}")
        keep &= match
    if not keep.any():
        raise InvalidParameterError(
            "--where " + " ".join(f"{k}={v}" for k, v in where.items()) + ": no point has all"
        )
    kept = set(points.loc[keep, "point"])
    tables = {
        name: table[table["point"].isin(kept)].reset_index(drop=True)
        for name, table in results.items()
    }
    return Results(results.out, tables, results.manifest, results.scenario_text, results.scenario)


def _save(fig: Any, path: Path) -> None:
    """One legend for the figure, right of its axes (the lines are the same in each), in
    columns of at most 20 entries."""
    from mercat.report.plots import plt

    handles, labels = fig.axes[0].get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(
            handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
            ncols=math.ceil(len(labels) / _DISTINCT),
            fontsize="small" if len(labels) > _DISTINCT else None,
        )  # fmt: skip
    fig.tight_layout()
    # under a temporary name, then renamed: a full disk leaves the earlier figure, not half
    # of a new one
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        fig.savefig(tmp, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidParameterError(
            f"cannot write figures to {path.parent}: {exc.strerror or exc}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def _colors(ax: Any, lines: int) -> None:
    """Distinct colours for a few lines; past 20, a colour map in the lines' order."""
    from mercat.report.plots import plt

    if lines <= _DISTINCT:
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    else:
        ax.set_prop_cycle(color=plt.get_cmap("viridis")(np.linspace(0.0, 0.95, lines)))


def _first(count: int, limit: int, what: str, warn: Warn) -> tuple[int, str]:
    """How many of `count` lines or boxes to draw, and a note for the figure's title."""
    if count <= limit:
        return count, ""
    warn(
        f"drew the first {limit} of {count} {what} (more are not legible); draw fewer with "
        "--where KEY=VALUE, e.g. one variant or one value of a swept parameter"
    )
    return limit, f" (first {limit} of {count} {what})"


def _label(row: pd.Series, columns: list[str]) -> str:
    return (
        ", ".join(
            f"{c.removeprefix('param_')}={row[c]}" if c != "variant" else str(row[c])
            for c in columns
        )
        or "all"
    )


def _design_columns(table: pd.DataFrame, design: list[str]) -> list[str]:
    """Where a per-run or per-step table holds the varied parameters: a parameter named like
    one of the table's own columns is `param_NAME` there (mercat.workbench.store)."""
    found = []
    for c in design:
        if f"param_{c}" in table.columns:
            found.append(f"param_{c}")
        elif c in table.columns:
            found.append(c)
    return found


def _se_column(points: pd.DataFrame, measure: str) -> str | None:
    for name in (
        measure.replace("_pct", "_se_pct"),
        measure.replace("_mean", "_se"),
        f"{measure}_se",
    ):
        if name != measure and name in points.columns:
            return name
    return None


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(
        frame[column]
    )


def _points(results: Results, sim: Any, design: list[str], warn: Warn) -> Any:
    from mercat.report.plots import plt

    points = results["points"]
    measures = [m for m in sim.headline if m in points.columns and _numeric(points, m)]
    if len(points) < 2 or not measures:
        return None
    by_case = "case" in points.columns and points["case"].notna().any()
    if by_case:  # explicit cases (Table I's configurations): one tick per case
        axis: str | None = "case"
        groups = ["variant"] if "variant" in points.columns else []
    else:
        axis = next((c for c in design if _numeric(points, c) and points[c].nunique() > 1), None)
        groups = [
            c for c in (["variant"] if "variant" in points.columns else []) + design if c != axis
        ]
    groups = [c for c in groups if points[c].nunique() > 1]
    count = points.groupby(groups, sort=False).ngroups if groups else 1
    lines, note = _first(count, MAX_LINES, "lines", warn)
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        _colors(ax, lines)
        se = _se_column(points, measure)
        series = points.groupby(groups, sort=False) if groups else [((), points)]
        for n, (_, part) in enumerate(series):
            if n >= lines:
                break
            label = _label(part.iloc[0], groups)
            if axis is None:
                x: Any = [str(p) for p in part["point"]]
            elif by_case:
                x = part["case"].astype(str)
            else:
                part = part.sort_values(axis)
                x = part[axis]
            err = part[se] if se else None
            ax.errorbar(
                x, part[measure], yerr=err, marker="o", capsize=3, label=label,
                linestyle="none" if by_case else "-",  # cases are categories, not a curve
            )  # fmt: skip
        ax.set_xlabel(axis or "point")
        ax.set_ylabel(measure)
    fig.suptitle(f"{results.manifest.get('scenario')}: {sim.name}{note}")
    return fig


def _run_measures(results: Results, sim: Any) -> list[str]:
    if "runs" not in results:
        return []
    runs = results["runs"]
    found = []
    for measure in sim.headline:
        name = measure.removesuffix("_mean")
        if name in runs.columns and _numeric(runs, name):
            found.append(name)
    return found


def _runs(results: Results, sim: Any, design: list[str], warn: Warn) -> Any:
    from mercat.report.plots import plt

    measures = _run_measures(results, sim)
    if not measures:
        return None
    runs = results["runs"]
    labels = ["variant"] if "variant" in runs.columns else []
    if "case" in runs.columns and runs["case"].notna().any():
        labels = ["case", *labels]  # a case's label stands for what it sets
    else:
        labels += [c for c in _design_columns(runs, design) if c not in labels]
    keys = runs["point"].drop_duplicates().tolist()
    boxes, note = _first(len(keys), MAX_BOXES, "points", warn)
    keys = keys[:boxes]
    firsts = [runs[runs["point"] == k].iloc[0] for k in keys]
    names = [
        " ".join(str(row[c]) for c in labels) or str(k) for k, row in zip(keys, firsts, strict=True)
    ]
    fig, axes = plt.subplots(
        len(measures), 1, figsize=(max(5.0, 0.5 * len(keys) + 2), 3.2 * len(measures)),
        squeeze=False,
    )  # fmt: skip
    for ax, measure in zip(axes[:, 0], measures, strict=True):
        data = [runs.loc[runs["point"] == k, measure].dropna().to_numpy() for k in keys]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(np.arange(1, len(keys) + 1), names, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(measure)
    axes[-1, 0].set_xlabel(" ".join(labels) or "point")
    fig.suptitle(f"{results.manifest.get('scenario')}: spread over runs{note}")
    return fig


def _steps(results: Results, sim: Any, design: list[str], warn: Warn) -> Any:
    from mercat.report.plots import plt

    if "steps" not in results or sim.step is None:
        return None
    steps = results["steps"]
    measures = [m for m in sim.step_measures if m in steps.columns]
    if not measures or sim.step not in steps.columns:
        return None
    labels = (["variant"] if "variant" in steps.columns else []) + _design_columns(steps, design)
    labels = [c for c in labels if steps[c].nunique() > 1]
    count = steps.groupby(labels, sort=False).ngroups if labels else 1
    lines, note = _first(count, MAX_LINES, "lines", warn)
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        _colors(ax, lines)
        series = steps.groupby(labels, sort=False) if labels else [((), steps)]
        for n, (_, part) in enumerate(series):
            if n >= lines:
                break
            mean = part.groupby(sim.step)[measure].mean()
            ax.plot(mean.index, mean.to_numpy(), label=_label(part.iloc[0], labels))
        ax.set_xlabel(sim.step)
        ax.set_ylabel(f"{measure} (mean over runs)")
    fig.suptitle(f"{results.manifest.get('scenario')}: per {sim.step}{note}")
    return fig
