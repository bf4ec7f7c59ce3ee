"""`mercat simulate collective ...`: any collective-incentive market configuration."""

from __future__ import annotations

import typer

from mercat.cli._output import print_json, print_mapping

app = typer.Typer(help="Simulate markets.", no_args_is_help=True)


@app.command()
def collective(
    mechanism: str = typer.Option("coll-sr", help="free, coll-stake, coll-rep or coll-sr."),
    assets: int = typer.Option(100, help="Initial number of assets N_a."),
    tasks: int = typer.Option(10_000, help="Tasks per run N_t."),
    assets_per_task: int = typer.Option(4, help="Assets per task |A_t|."),
    alpha: float = typer.Option(0.05, help="Power-law parameter of asset failure rates."),
    stake: float = typer.Option(10.0, help="Initial stake S0."),
    penalty: float = typer.Option(1.0, help="Penalty P."),
    target: float = typer.Option(0.01, help="Target task failure rate F_t^target."),
    interval: int = typer.Option(500, help="Replacement interval T (tasks)."),
    runs: int = typer.Option(100, help="Independent runs."),
    seed: int = typer.Option(1, help="Root seed."),
    engine: str = typer.Option("fast", help="fast (numba) or reference (plain Python)."),
    window: int = typer.Option(500, help="Moving-average window for failure rates."),
    sampling: str = typer.Option("pool", help="Failure rates: pool (simulator) or direct."),
    strict_removal: bool = typer.Option(
        False, "--strict-removal", help="Remove at S < P (the paper) instead of S <= P."
    ),
    replacement: str = typer.Option("one-per-interval", help="one-per-interval or refill."),
    combinations: int = typer.Option(0, help="Failure-prone combinations per new asset."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run a collective-incentive marketplace and print removal precision and failure rates."""
    from mercat.progress import progress_bar
    from mercat.sim.collective_config import CollectiveConfig
    from mercat.sim.collective_sim import simulate

    config = CollectiveConfig(
        mechanism=mechanism,
        assets=assets,
        tasks=tasks,
        assets_per_task=assets_per_task,
        alpha=alpha,
        stake=stake,
        penalty=penalty,
        target=target,
        replacement_interval=interval,
        failure_rate_sampling=sampling,
        removal_inclusive=not strict_removal,
        replacement=replacement,
        combinations_per_asset=combinations,
    )
    with progress_bar(f"{mechanism} ({engine})", runs, enabled=not as_json) as advance:
        result = simulate(config, runs=runs, seed=seed, engine=engine, progress=advance)
    summary = result.summary(window)
    if as_json:
        print_json({"config": config.as_dict(), "seed": seed, "engine": engine, "summary": summary})
    else:
        print_mapping(f"{mechanism}: {runs} runs of {tasks} tasks, {assets} assets", summary)
