"""`mercat simulate collective ...`: any collective-incentive market configuration."""

from __future__ import annotations

from typing import Any, Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import collective_option, json_option, seed_option
from mercat.cli._output import print_json, print_mapping

MAX_FEDAVG_RUNS = 1000
"""Training runs of one `mercat simulate fedavg` (more is a sweep: mercat sweep)."""

MAX_FEDAVG_ROUNDS = 1_000_000
"""Training rounds of one `mercat simulate fedavg` (10**23 overflowed numpy's array sizes)."""

app = MercatTyper(help="Simulate markets.", no_args_is_help=True)


@app.command(renamed={"--mechanism": "--collective"})
def collective(
    mechanism: str = collective_option(
        "coll-sr", help="Collective rule (plug-ins run on the reference and pipeline engines)"
    ),
    rule_option: list[str] = typer.Option(
        [], "--rule-option", "-r", help="A plug-in rule's option KEY=VALUE (repeatable)."
    ),
    assets: int = typer.Option(100, help="Initial number of assets N_a."),
    tasks: int = typer.Option(10_000, help="Tasks per run N_t."),
    assets_per_task: int = typer.Option(4, help="Assets per task |A_t|."),
    alpha: float = typer.Option(0.05, help="Power-law parameter of asset failure rates."),
    stake: float = typer.Option(10.0, help="Initial stake S0."),
    penalty: float = typer.Option(1.0, help="Penalty P."),
    target: float = typer.Option(0.01, help="Target task failure rate F_t^target."),
    interval: int = typer.Option(500, help="Replacement interval T (tasks)."),
    runs: int = typer.Option(100, help="Independent runs."),
    seed: int = seed_option(1),
    engine: Literal["fast", "reference", "pipeline", "gpu"] = typer.Option(
        "fast",
        help="fast (numba), reference (plain Python), pipeline (the round pipeline a live "
        "market runs, on an in-memory book) or gpu (one CUDA thread per run; pip install "
        "'mercat[gpu]').",
    ),
    tasks_per_round: int = typer.Option(
        1, help="pipeline engine: tasks drawn per round (1: each settles before the next)."
    ),
    workers: int = typer.Option(1, help="pipeline engine: processes that share the runs."),
    window: int = typer.Option(500, help="Moving-average window for failure rates."),
    sampling: Literal["pool", "direct"] = typer.Option(
        "pool", help="Failure rates: pool (simulator) or direct."
    ),
    strict_removal: bool = typer.Option(
        False, "--strict-removal", help="Remove at S < P (the paper) instead of S <= P."
    ),
    replacement: Literal["one-per-interval", "refill"] = typer.Option(
        "one-per-interval", help="How removed assets come back: one per interval, or refill."
    ),
    combinations: int = typer.Option(0, help="Failure-prone combinations per new asset."),
    as_json: bool = json_option(),
) -> None:
    """Run a collective-incentive marketplace and print removal precision and failure rates."""
    from mercat import validation as check
    from mercat.errors import InvalidParameterError
    from mercat.progress import progress_bar
    from mercat.scenarios.collective_config import CollectiveConfig
    from mercat.scenarios.collective_sim import check_engine, check_runs, simulate

    if engine != "pipeline" and (tasks_per_round != 1 or workers != 1):
        # the other engines would run as if they were not given: say so instead
        given = "--tasks-per-round" if tasks_per_round != 1 else "--workers"
        raise InvalidParameterError(f"{given} applies to --engine pipeline only")
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
        rule_options=_options(rule_option),
    )
    check_engine(config, engine)  # before the bar: a refused engine prints one line
    check_runs(runs, "--runs")
    check.integer("--window", window, minimum=1)
    with progress_bar(f"{mechanism} ({engine})", runs, enabled=not as_json) as advance:
        try:
            result = simulate(
                config, runs=runs, seed=seed, engine=engine, progress=advance,
                tasks_per_round=tasks_per_round, workers=workers,
            )  # fmt: skip
        except MemoryError as exc:  # numpy says how much it wanted, in one line
            raise InvalidParameterError(
                f"not enough memory for {runs} runs of {tasks} tasks and {assets} assets "
                f"({exc}); lower --runs, --tasks or --assets"
            ) from None
    summary = result.summary(window)
    if as_json:
        print_json({"config": config.as_dict(), "seed": seed, "engine": engine, "summary": summary})
    else:
        print_mapping(f"{mechanism}: {runs} runs of {tasks} tasks, {assets} assets", summary)


def _options(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` strings: VALUE read as JSON when it parses (0.3, true), else a string."""
    import json

    from mercat.errors import InvalidParameterError

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidParameterError(f"--rule-option must look like KEY=VALUE, got {pair!r}")
        if key in options:
            raise InvalidParameterError(f"--rule-option {key} given twice")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


@app.command()
def fedavg(
    clients: int = typer.Option(1000, help="Clients in the synthetic federation."),
    dim: int = typer.Option(20, help="Features per example."),
    mean_examples: int = typer.Option(50, help="Mean examples per client (geometric sizes)."),
    heterogeneity: float = typer.Option(1.0, help="Scale of each client's feature shift."),
    rounds: int = typer.Option(50, help="Training rounds."),
    sampling_rate: float = typer.Option(0.2, help="Probability that a client joins a round."),
    local_steps: int = typer.Option(5, help="Gradient steps per client per round."),
    learning_rate: float = typer.Option(0.5, help="Clients' step size."),
    noise: Literal["none", "central", "local", "example"] = typer.Option(
        "central",
        help="none, central (DP-FedAvg), local (eq. 4 at each client) or example (DP-SGD in "
        "each client, example-level).",
    ),
    noise_multiplier: float = typer.Option(1.0, help="z = σ / clip norm."),
    clip_norm: float = typer.Option(1.0, help="L2 bound on each client's update."),
    delta: float = typer.Option(1e-5, help="δ at which ε is reported."),
    seed: int = typer.Option(1, help="Seed of the federation and of the training run."),
    runs: int = typer.Option(
        1,
        help="Training runs on the same federation (run 0 is the single run; the summary "
        "then gives the mean final accuracy and its standard error).",
    ),
    engine: Literal["fast", "reference"] = typer.Option(
        "fast", help="fast (vectorized) or reference (per client)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Federated averaging with differentially private updates (seed 002, eq. 4 and Alg. 1-2)."""
    import numpy as np

    from mercat import validation as check
    from mercat.errors import InvalidParameterError
    from mercat.privacy import fedavg as fl
    from mercat.progress import progress_bar
    from mercat.workbench.simulation import mean_and_se
    from mercat.workbench.simulations.fedavg import training_rng

    engines = {"fast": fl.train, "reference": fl.train_reference}  # --engine's choices
    check.integer("seed", seed, 0)
    check.integer("runs", runs, 1)
    if runs > MAX_FEDAVG_RUNS:
        raise InvalidParameterError(f"runs must be at most {MAX_FEDAVG_RUNS}, got {runs}")
    if check.integer("rounds", rounds, 1) > MAX_FEDAVG_ROUNDS:
        raise InvalidParameterError(f"rounds must be at most {MAX_FEDAVG_ROUNDS:,}, got {rounds}")
    check.open_unit("delta", delta)  # before training, not after it
    config = fl.FedAvgConfig(
        rounds=rounds,
        sampling_rate=sampling_rate,
        local_steps=local_steps,
        learning_rate=learning_rate,
        noise=noise,  # type: ignore[arg-type]
        noise_multiplier=noise_multiplier,
        clip_norm=clip_norm,
    )
    federation = fl.make_federation(
        clients, dim, np.random.default_rng([seed, 0]), mean_examples, heterogeneity
    )
    results = []
    with progress_bar("training runs", runs, enabled=not as_json) as advance:
        for r in range(runs):  # the same random numbers as a sweep's runs of this point
            results.append(engines[engine](federation, config, training_rng(seed, r)))
            advance(1)
    per_run = [
        {
            "run": r,
            "final_accuracy": float(result.accuracy[-1]),
            "epsilon": result.epsilon(delta),
            "max_participations": int(result.participations.max()),
            "train_seconds": result.seconds,
        }
        for r, result in enumerate(results)
    ]
    accuracy, accuracy_se = mean_and_se([row["final_accuracy"] for row in per_run])
    summary: dict[str, Any] = {
        "final_accuracy": accuracy,
        "epsilon": max(row["epsilon"] for row in per_run),
        "delta": delta,
        "max_participations": max(row["max_participations"] for row in per_run),
        "train_seconds": sum(row["train_seconds"] for row in per_run),
    }
    if runs > 1:
        summary = {"runs": runs, **summary, "final_accuracy_se": accuracy_se}
    if as_json:
        out = {"config": vars(config), "seed": seed, "engine": engine, "summary": summary}
        if runs > 1:
            out["runs"] = per_run
        print_json(out)
    else:
        print_mapping(f"FedAvg, {clients} clients, {rounds} rounds, noise {noise}", summary)


@app.command(renamed={"--mechanism": "--collective"})
def cloudchain(
    requesters: int = typer.Option(100, help="Requesters, split over the groups by share."),
    days: int = typer.Option(30, help="Days of hourly rounds."),
    community: int = typer.Option(23, help="Community nodes beside the 5 clouds."),
    mechanism: Literal["free", "coll-stake", "coll-rep", "coll-sr"] = typer.Option(
        "coll-stake", "--collective", help="Collective rule on servers' stakes (seed 000's four)."
    ),
    target: float = typer.Option(0.05, help="Target task failure rate F (reward R = F·P/(1-F))."),
    stake: float = typer.Option(50.0, help="Tokens staked on each server (S0)."),
    penalty_factor: float = typer.Option(
        0.5, help="λ of eq. 2: tokens per oracle report; the penalty is P = λ·n."
    ),
    oracles: int = typer.Option(5, help="Oracles reporting on each task (n)."),
    quorum: int = typer.Option(3, help="Oracles that must agree (q, 2q > n)."),
    oracle_error: float = typer.Option(0.02, help="Probability that an oracle misreports."),
    signed_reports: bool = typer.Option(
        False, "--signed-reports", help="Oracles sign every report; the tally checks signatures."
    ),
    drop: Literal["none", "random", "group"] = typer.Option(
        "none", help="Control: drop jobs before the market sees them: none, random or group."
    ),
    drop_probability: float = typer.Option(0.0, help="Control: probability a job is dropped."),
    drop_group: str = typer.Option("", help="Control: the group whose jobs --drop group drops."),
    seed: int = typer.Option(1, help="Seed of the run (the providers are fixed: seed 0)."),
    as_json: bool = json_option(),
) -> None:
    """Seed 002's 30-day marketplace through the round pipeline: clouds and community nodes,
    hourly premium and open double auctions, oracles, the collective rule, an audited book."""
    from dataclasses import asdict

    from mercat import validation as check
    from mercat.cli._output import print_table
    from mercat.progress import progress_bar
    from mercat.scenarios.cloudchain import simulate
    from mercat.scenarios.cloudchain_config import CloudChainConfig, default_providers

    check.integer("community", community, 0)
    check.integer("seed", seed, 0)
    config = CloudChainConfig(
        requesters=requesters,
        days=days,
        providers=default_providers(community),
        mechanism=mechanism,
        target=target,
        stake=stake,
        penalty_factor=penalty_factor,
        oracles=oracles,
        quorum=quorum,
        oracle_error=oracle_error,
        signed_reports=signed_reports,
        drop=drop,
        drop_probability=drop_probability,
        drop_group=drop_group,
    )
    with progress_bar("seed 002 market (hours)", config.rounds, enabled=not as_json) as advance:
        result = simulate(config, seed=seed, progress=advance)
    tokens = {p.name: float(t) for p, t in zip(config.providers, result.tokens, strict=True)}
    if as_json:
        print_json(
            {
                "config": asdict(config),
                "seed": seed,
                "summary": result.summary(),
                "groups": result.groups_table(),
                "providers": result.providers_table(),
                "tokens": tokens,
                "audit": result.audit,
            }
        )
    else:
        print_mapping(
            f"{days} days, {requesters} requesters, {len(config.providers)} providers, {mechanism}",
            result.summary(),
        )
        print_table("requester groups (Jain's index is over their served share)",
                    result.groups_table())  # fmt: skip
        top = sorted(tokens.items(), key=lambda item: -item[1])[:10]
        print_mapping("tokens (top 10, eq. 2: payouts + stake change)", dict(top))
        print_mapping("audit (balances by role, tokens)", result.audit["by_role"])
