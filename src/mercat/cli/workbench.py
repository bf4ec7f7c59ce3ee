"""`mercat sweep`, `mercat plot` and `mercat scenario`: the researcher's workbench.

mercat scenario check SCENARIO.toml            the points a scenario expands to
mercat scenario simulations [NAME]             what a scenario can run, and its parameters
mercat sweep SCENARIO.toml --out DIR [--backend local|ray] [--workers N]
mercat plot DIR [--where KEY=VALUE]            the standard figures, as PNG
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._output import console, err_console, print_json, print_table

if TYPE_CHECKING:  # numpy and pandas: imported by the commands that need them
    from mercat.workbench.simulation import Parameter

app = MercatTyper()
scenario_app = MercatTyper(help="Scenario files: check them, list what they can run.")


@app.command()
def sweep(
    scenario_file: Path = typer.Argument(..., help="A scenario file (docs/workbench.md)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results directory (new, or to resume)."),
    backend: Literal["local", "ray"] = typer.Option(
        "local", help="local (processes here) or ray (Ray tasks)."
    ),
    workers: int | None = typer.Option(
        None, min=1, help="Processes (local) or CPUs of a local Ray; default: every core."
    ),
    ray_address: str | None = typer.Option(
        None, help="Join this Ray cluster (auto, ray://host:10001) instead of starting one."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Replace a fixed parameter: KEY=VALUE (repeatable), e.g. runs=2."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Run every point of a scenario (in parallel, resumably) into tidy tables."""
    from mercat.progress import progress_bar
    from mercat.workbench.scenario import read_scenario
    from mercat.workbench.store import check, is_done
    from mercat.workbench.sweep import SweepInterrupted, check_backend, run_sweep

    scenario = read_scenario(scenario_file, _assignments(set_))
    # a refused --out or --workers is its error line alone, before the counts below
    check_backend(backend, workers, ray_address)
    check(out, scenario)
    todo = sum(1 for p in scenario.points if not is_done(out, p))
    if not as_json:
        err_console.print(
            f"{scenario.name}: {len(scenario.points)} points of {scenario.simulation.name}, "
            f"{len(scenario.points) - todo} already in {out}, {todo} to run ({backend})",
            highlight=False,
        )
    try:
        with progress_bar(f"sweep {scenario.name}", todo, enabled=not as_json) as advance:
            report = run_sweep(
                scenario,
                out,
                backend=backend,
                workers=workers,
                ray_address=ray_address,
                progress=lambda done, total: advance(1),
            )
    except SweepInterrupted as exc:
        err_console.print(f"[bold]{exc}[/]", highlight=False)
        raise typer.Exit(code=130) from None
    summary = {
        "out": str(report.out),
        "points": report.points,
        "computed": report.computed,
        "reused": report.reused,
        "seconds": round(report.seconds, 3),
        "files": [str(f) for f in report.files],
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{report.points} points ({report.computed} run, {report.reused} reused) in "
        f"{report.seconds:.1f} s; tables in {report.out}: "
        + ", ".join(sorted({f.stem for f in report.files})),
        highlight=False,
    )


@app.command()
def plot(
    results: Path = typer.Argument(..., help="A results directory written by mercat sweep."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Figures here (default: DIR/figures)."
    ),
    where: list[str] = typer.Option(
        [], "--where", help="Draw only the points where KEY=VALUE (repeatable), e.g. variant=a."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures written as JSON."),
) -> None:
    """Draw the standard figures of a results directory (PNG)."""
    from rich.markup import escape

    from mercat.workbench.plot import plot_results

    notes: list[str] = []

    def warn(message: str) -> None:  # a figure that drew only part of its data
        notes.append(message)
        err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)

    figures = plot_results(results, out, where=_selection(where), warn=warn)
    if as_json:
        print_json({"figures": [str(f) for f in figures], "warnings": notes})
        return
    for figure in figures:
        console.print(str(figure), highlight=False)


def _assignments(pairs: list[str]) -> dict[str, object]:
    from mercat.errors import ScenarioError
    from mercat.workbench.scenario import parse_assignment

    found: dict[str, object] = {}
    for pair in pairs:
        key, value = parse_assignment(pair)
        if key in found:
            raise ScenarioError(f"--set {key} given twice")
        found[key] = value
    return found


def _selection(pairs: list[str]) -> dict[str, object]:
    from mercat.errors import InvalidParameterError
    from mercat.workbench.scenario import parse_assignment

    found: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair or not pair.partition("=")[0].strip():
            raise InvalidParameterError(f"--where must look like KEY=VALUE, got {pair!r}")
        key, value = parse_assignment(pair)
        if key in found:
            raise InvalidParameterError(f"--where {key} given twice")
        found[key] = value
    return found


@scenario_app.command("check")
def check(
    scenario_file: Path = typer.Argument(..., help="A scenario file (docs/workbench.md)."),
    set_: list[str] = typer.Option([], "--set", help="Replace a fixed parameter: KEY=VALUE."),
    as_json: bool = typer.Option(False, "--json", help="Print the points as JSON."),
) -> None:
    """Check a scenario file and list the points it expands to."""
    from mercat.workbench.scenario import read_scenario

    scenario = read_scenario(scenario_file, _assignments(set_))
    points = [
        {
            "point": p.index,
            **({"case": p.case} if scenario.cases else {}),
            **({"variant": p.variant} if scenario.variants else {}),
            **p.design,
            "runs": p.params["runs"],
            "seed": p.params["seed"],
            "key": p.key,
        }
        for p in scenario.points
    ]
    if as_json:
        print_json(
            {"scenario": scenario.name, "simulation": scenario.simulation.name, "points": points}
        )
        return
    print_table(f"{scenario.name}: {len(points)} points of {scenario.simulation.name}", points)


@scenario_app.command("simulations")
def simulations(
    name: str | None = typer.Argument(
        None, help="One simulation, to list its parameters: {choices:simulation}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The simulations a scenario can run, or one simulation's parameters."""
    from mercat.workbench.scenario import COMMON
    from mercat.workbench.simulation import SIMULATIONS, simulation

    if name is None:
        rows = [{"simulation": n, "title": simulation(n).title} for n in SIMULATIONS.names()]
        if as_json:
            print_json(rows)
        else:
            print_table("simulations", rows)
        return
    sim = simulation(name)
    rows = [
        {
            "parameter": p.name,
            "kind": p.kind,
            "default": p.default,
            "help": p.help + (f" ({', '.join(p.choices)})" if p.choices else "") + _bounds(p),
        }
        for p in (*COMMON, *sim.parameters)
    ]
    if as_json:
        print_json({"simulation": sim.name, "title": sim.title, "parameters": rows})
    else:
        print_table(f"{sim.name}: {sim.title}", rows)


def _bounds(parameter: Parameter) -> str:
    """` (at most 10,000)` for a bounded parameter: the scenario checker refuses past it."""
    return "" if parameter.maximum is None else f" (at most {parameter.maximum:,})"
