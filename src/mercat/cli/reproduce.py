"""`mercat reproduce NAME`: rerun an experiment of the seeds and refresh the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.markup import escape

from mercat.cli._help import MercatTyper
from mercat.cli._options import json_option, out_option, seed_option
from mercat.cli._output import console, err_console, print_json

app = MercatTyper()


@app.command()
def reproduce(
    name: str = typer.Argument(..., help="Experiment: {choices:experiment}."),
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes where an experiment is slow."),
    out: Path = out_option(Path("report"), help="Report directory."),
    runs: int | None = typer.Option(
        None, min=1, help="Runs per configuration (default: the seed's)."
    ),
    seed: int = seed_option(1, help="Root seed; every result is reproducible from it."),
    engine: Literal["fast", "reference", "pipeline", "gpu"] = typer.Option(
        "fast",
        help="Engine of seed 000's simulations (table1, fig4, fig5): fast (numba), reference "
        "(plain Python), pipeline (the round pipeline) or gpu (one CUDA thread per run; pip "
        "install 'mercat[gpu]'). Other experiments have their own.",
    ),
    as_json: bool = json_option(help="Print the headline numbers as JSON."),
) -> None:
    """Reproduce a figure or table of the seeds into CSV, PNG and the HTML report."""
    import datetime as dt
    import shlex
    import time

    from mercat import __version__
    from mercat.errors import InvalidParameterError
    from mercat.files import TMP_PREFIX
    from mercat.report import experiments as registry
    from mercat.report.html import RunInfo, write_report

    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()

    names = list(registry.experiments()) if name == "all" else [registry.get(name).name]
    if runs is not None:  # before any experiment starts (a simulation refuses more runs)
        from mercat.scenarios.collective_sim import check_runs

        check_runs(runs, "--runs")
    if {"table1", "fig4", "fig5"} & set(names):
        from mercat.scenarios.collective_config import CollectiveConfig
        from mercat.scenarios.collective_sim import check_engine

        check_engine(CollectiveConfig(), engine)  # the gpu engine without a GPU: one line
    # Before any experiment runs (some take minutes): the report must have somewhere to go.
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f"{TMP_PREFIX}writable"  # a directory that exists may refuse files
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidParameterError(
            f"--out {str(out)!r} cannot hold the report: {exc.strerror}"
        ) from None
    context = registry.ExperimentContext(
        out_dir=out, quick=quick, runs=runs, seed=seed, show_progress=not as_json, engine=engine
    )
    facts = {}
    for n in names:
        if not as_json:
            title = registry.get(n).title
            err_console.print(f"[bold]reproducing {escape(n)}[/] ({escape(title)})")
        section = registry.run_experiment(n, context)
        facts[n] = {"seconds": section.seconds, **section.facts}
    # The header names the command as it would be retyped to make this report again.
    command = ["mercat", "reproduce", name, *(["--quick"] if quick else []), "--out", str(out)]
    command += [*(["--runs", str(runs)] if runs else []), "--seed", str(seed)]
    command += ["--engine", engine] if engine != "fast" else []
    run = RunInfo(
        command=shlex.join(command),
        rng_seed=seed,
        version=__version__,
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        quick=quick,
        seconds=time.perf_counter() - clock,
    )
    page = write_report(out, registry.saved_sections(out), run=run)
    if as_json:
        print_json({"report": str(page), "experiments": facts})
    else:
        console.print(f"report written to {escape(str(page))}")
