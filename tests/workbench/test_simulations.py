"""Each simulation a scenario can run gives the numbers of the command or function it
wraps, and tables that add up (per run, per step)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.scenarios import collective_metrics as metrics
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate
from mercat.workbench.scenario import COMMON
from mercat.workbench.simulation import SIMULATIONS, Steps, run_seed, simulation
from mercat.workbench.simulations.collective import summary_of

runner = CliRunner()


def params(name: str, **changes):  # type: ignore[no-untyped-def]
    sim = simulation(name)
    values = {p.name: p.default for p in (*COMMON, *sim.parameters)}
    values.update(changes)
    return sim, values


def run(name: str, runs: int, seed: int, steps: Steps = Steps(), **changes):  # type: ignore[no-untyped-def]
    sim, values = params(name, **changes)
    return sim.run(sim.build(values), runs, seed, steps)


def test_the_simulations_are_listed_in_order_with_unique_parameters():
    assert SIMULATIONS.names()[:5] == ["collective", "fedavg", "clearing", "marketplace",
                                       "cloudchain"]  # fmt: skip
    for name in SIMULATIONS.names():
        sim = simulation(name)
        names = [p.name for p in sim.parameters]
        assert len(names) == len(set(names)) and not {"runs", "seed"} & set(names), name
        assert sim.title and sim.__doc__
        for p in sim.parameters:
            if p.kind != "bool?" and p.default is not None:
                assert p.coerce(p.default) == p.default, (name, p.name)
    assert run_seed(5, 0) == 5 and run_seed(5, 1) != run_seed(5, 2) != 5


def test_collective_summary_is_mercat_simulate_collectives_and_runs_add_up():
    out = run("collective", 6, 3, Steps(True, 100), assets=20, tasks=450, mechanism="coll-stake")
    config = CollectiveConfig(mechanism="coll-stake", assets=20, tasks=450)
    cli = runner.invoke(app, ["simulate", "collective", "--collective", "coll-stake",
                              "--assets", "20", "--tasks", "450", "--runs", "6", "--seed", "3",
                              "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    reported = json.loads(cli.output)["summary"]
    assert {k: out.summary[k] for k in reported} == reported
    runs = out.tables["runs"]
    assert len(runs) == 6 and runs["run"].tolist() == list(range(6))
    assert runs["removal_precision_pct"].mean() == pytest.approx(reported["removal_precision_pct"])
    assert runs["task_failure_rate_pct"].mean() == pytest.approx(reported["task_failure_rate_pct"])
    assert (runs["removed"] == runs["true_positives"] + runs["false_positives"]).all()
    steps = out.tables["steps"]
    assert steps.groupby("run")["task"].apply(list).tolist() == [[100, 200, 300, 400, 450]] * 6
    records = simulate(config, runs=6, seed=3).runs
    widths = np.array([100, 100, 100, 100, 50] * 6)
    failed = (steps["failure_rate_pct"].to_numpy() * widths / 100).round()
    assert failed.sum() == sum(int(r.failed.sum()) for r in records)
    last = steps[steps["task"] == 450]
    assert last["removed"].tolist() == runs["removed"].tolist()
    assert last["live_assets"].tolist() == runs["final_live_assets"].tolist()


@pytest.mark.parametrize("window", [50, 500])
def test_the_summary_from_one_moving_average_equals_the_reference(window):
    records = simulate(CollectiveConfig(assets=30, tasks=800), runs=5, seed=2).runs
    failed = metrics.failure_matrix(records)
    curves = metrics.moving_average(failed, window)
    assert summary_of(records, failed, curves, window) == metrics.summary(records, window)


def test_collective_refuses_the_fast_engine_for_a_python_rule_and_steps_can_be_left_out():
    sim, values = params("collective", mechanism="tests.incentives.rules_for_tests:HalvingRule")
    with pytest.raises(InvalidParameterError, match="fast engine"):
        sim.build(values)
    out = run("collective", 1, 1, Steps(False), assets=10, tasks=100)
    assert set(out.tables) == {"runs"}


def test_fedavg_run_zero_is_mercat_simulate_fedavg():
    sizes = {"clients": 60, "rounds": 6, "dim": 5, "mean_examples": 20}
    out = run("fedavg", 2, 4, **sizes)
    cli = runner.invoke(app, ["simulate", "fedavg", "--clients", "60", "--rounds", "6", "--dim",
                              "5", "--mean-examples", "20", "--seed", "4", "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    reported = json.loads(cli.output)["summary"]
    first = out.tables["runs"].iloc[0]
    assert first["final_accuracy"] == reported["final_accuracy"]
    assert first["epsilon"] == reported["epsilon"]
    steps = out.tables["steps"]
    assert len(steps) == 2 * 6
    assert (
        steps[steps["round"] == 6]["accuracy"].tolist()
        == out.tables["runs"]["final_accuracy"].tolist()
    )


def test_mercat_simulate_fedavg_runs_are_a_sweeps_runs():
    sizes = {"clients": 60, "rounds": 4, "dim": 5, "mean_examples": 20}
    out = run("fedavg", 3, 7, **sizes)
    cli = runner.invoke(app, ["simulate", "fedavg", "--clients", "60", "--rounds", "4", "--dim",
                              "5", "--mean-examples", "20", "--seed", "7", "--runs", "3",
                              "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    reported = json.loads(cli.output)
    per_run = [r["final_accuracy"] for r in reported["runs"]]
    assert per_run == out.tables["runs"]["final_accuracy"].tolist()
    assert reported["summary"]["runs"] == 3
    assert reported["summary"]["final_accuracy"] == pytest.approx(np.mean(per_run), rel=1e-12)
    assert reported["summary"]["final_accuracy_se"] == pytest.approx(
        out.summary["final_accuracy_se"], rel=1e-12
    )
    refused = runner.invoke(app, ["simulate", "fedavg", "--runs", "0"])
    assert refused.exit_code == 2 and "runs must be an integer >= 1" in refused.output


def test_clearing_runs_clear_the_same_markets_whatever_the_mechanism():
    base = {"market": "random", "requests": 5, "nodes": 3, "optimum": True}
    optimal = run("clearing", 3, 2, mechanism="optimal", **base).tables["runs"]
    greedy = run("clearing", 3, 2, mechanism="collective", **base).tables["runs"]
    assert optimal["optimal_welfare"].tolist() == greedy["optimal_welfare"].tolist()
    assert optimal["efficiency"].tolist() == pytest.approx([1.0] * 3)
    assert (greedy["welfare"] <= greedy["optimal_welfare"] + 1e-9).all()
    assert optimal["valid"].all() and optimal["proven"].all()


def test_clearing_refuses_a_family_the_mechanism_cannot_clear():
    sim, values = params("clearing", mechanism="double-auction", market="random")
    with pytest.raises(InvalidMarketError, match="double-auction: the market must be divisible"):
        sim.build(values)


def test_marketplace_run_zero_is_mercat_market_run():
    out = run("marketplace", 2, 5, Steps(True, 1), rounds=3, providers=2, requesters=3)
    cli = runner.invoke(app, ["market", "run", "--rounds", "3", "--providers", "2",
                              "--requesters", "3", "--seed", "5", "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    reported = json.loads(cli.output)
    first = out.tables["runs"].iloc[0]
    assert (first["tasks"], first["paid"], first["welfare"]) == (
        reported["tasks"], reported["paid"], reported["welfare"]
    )  # fmt: skip
    steps = out.tables["steps"]
    assert steps[steps["run"] == 0]["tasks"].tolist() == [r["tasks"] for r in reported["per_round"]]


def test_marketplace_agents_change_the_bids():
    base = {"rounds": 6, "providers": 2, "requesters": 3}
    truthful = run("marketplace", 1, 1, **base).tables["runs"].iloc[0]
    shading = run(
        "marketplace", 1, 1, requester_strategy="shading", strategy_options={"fraction": 0.5},
        **base,
    ).tables["runs"].iloc[0]  # fmt: skip
    assert shading["charged"] < truthful["charged"]
    sim, values = params("marketplace", requester_strategy="shading",
                         strategy_options={"fraction": -1})  # fmt: skip
    with pytest.raises(InvalidParameterError, match="fraction"):
        sim.build(values)


def test_marketplace_provider_agents_ask_above_cost_and_earn_more():
    base = {"rounds": 6, "providers": 2, "requesters": 3}
    truthful = run("marketplace", 1, 1, **base).tables["runs"].iloc[0]
    marked = run(
        "marketplace", 1, 1, provider_strategy="markup",
        provider_strategy_options={"markup": 1.0}, **base,
    ).tables["runs"].iloc[0]  # fmt: skip
    assert marked["provider_profit"] > truthful["provider_profit"]
    sim, values = params("marketplace", provider_strategy="markup",
                         provider_strategy_options={"markup": -1})  # fmt: skip
    with pytest.raises(InvalidParameterError, match="markup"):
        sim.build(values)


def test_a_requester_that_bids_nothing_posts_nothing():
    base = {"rounds": 3, "providers": 2, "requesters": 3}
    out = run("marketplace", 1, 1, requester_strategy="tests.workbench.sims_for_tests:Abstains",
              **base).tables  # fmt: skip
    assert out["runs"].iloc[0]["charged"] == 0
    assert out["steps"]["tasks"].sum() == 0


def test_cloudchain_adapter_reads_the_public_entry_point():
    from mercat.scenarios.cloudchain import simulate
    from mercat.scenarios.cloudchain_config import CloudChainConfig, default_providers

    sim, values = params("cloudchain", days=1, requesters=8, community=3)
    assert {"community", "requesters", "days"} <= {p.name for p in sim.parameters}
    out = sim.run(sim.build(values), 2, 3, Steps(True, 6))
    config = CloudChainConfig(requesters=8, days=1, providers=default_providers(3))
    direct = simulate(config, seed=3)
    runs = out.tables["runs"]
    assert runs.loc[0, "jobs_completed"] == direct.jobs_completed
    assert len(out.tables["providers"]) == 2 * len(config.providers)
    assert out.tables["steps"]["hour"].tolist() == [6, 12, 18, 24] * 2
    assert isinstance(out.tables["steps"], pd.DataFrame)


def test_cloudchain_tables_do_not_depend_on_sizes_that_coincide():
    # 28 requesters beside 5 clouds and 23 community nodes; 24 requesters over 24 hours
    for requesters in (28, 24):
        out = run("cloudchain", 1, 1, Steps(True, 1), days=1, requesters=requesters)
        assert list(out.tables["providers"].columns) == [
            "run", "provider", "earned", "stake_change", "allocated", "delivered", "offered",
            "tokens", "utilization",
        ]  # fmt: skip
        assert list(out.tables["steps"].columns) == ["run", "hour", "hourly_gpu_hours"]


def test_the_last_step_is_always_kept_however_far_apart_the_kept_steps_are():
    assert Steps(True, 1).kept(3) == [0, 1, 2]
    assert Steps(True, 2).kept(5) == [1, 3, 4]
    assert Steps(True, 5).kept(5) == [4]
    assert Steps(True, 50).kept(3) == [2]
    assert Steps(True, 7).kept(0) == []


def test_marketplace_steps_end_with_the_last_round_even_past_step_every():
    small = {"rounds": 3, "providers": 2, "requesters": 3}
    every_round = run("marketplace", 2, 5, Steps(True, 1), **small).tables["steps"]
    # a step_every past the rounds keeps the last round, not none
    past = run("marketplace", 2, 5, Steps(True, 10), **small).tables["steps"]
    assert past["round"].tolist() == [3, 3]
    last = every_round[every_round["round"] == 3].reset_index(drop=True)
    pd.testing.assert_frame_equal(past, last)
    assert run("marketplace", 1, 5, Steps(True, 2), **small).tables["steps"]["round"].tolist() == [
        2, 3,
    ]  # fmt: skip


def test_cloudchain_and_fedavg_steps_end_with_the_last_one_too():
    hours = run("cloudchain", 1, 3, Steps(True, 100), days=1, requesters=8, community=3)
    assert hours.tables["steps"]["hour"].tolist() == [24]
    rounds = run("fedavg", 1, 3, Steps(True, 100), clients=20, rounds=3)
    assert rounds.tables["steps"]["round"].tolist() == [3]
