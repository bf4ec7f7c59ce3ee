"""Every example scenario runs (at a small size, through `mercat sweep --set`), its results
load and plot; the local and the Ray backend write identical tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.workbench import load, read_scenario, run_sweep
from mercat.workbench.scenario import parse_assignment

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"

# the fixed parameters that make each example small; the swept ones stay as written
SMALL: dict[str, list[str]] = {
    "collective-sweep.toml": ["runs=2", "tasks=600", "assets=20"],
    "marketplace-agents.toml": ["runs=1", "rounds=3"],
    "marketplace-provider-asks.toml": ["runs=1", "rounds=3"],
    "seed000-collusion.toml": ["runs=1", "tasks=300", "assets=20"],
    "seed000-intermittent.toml": ["runs=1", "tasks=300", "assets=20"],
    "seed000-sybil.toml": ["runs=1", "tasks=300", "assets=20"],
    "seed000-table1.toml": ["runs=1"],
    "seed000-whitewashing.toml": ["runs=1", "tasks=300", "assets=20"],
    "seed001-posted-prices.toml": ["runs=1"],
    "seed002-cloudchain.toml": ["runs=1", "days=2"],
    "seed002-fedavg.toml": ["runs=1", "clients=60", "rounds=3"],
    "seed003-auctions.toml": ["runs=1"],
}


def test_every_example_scenario_is_listed_here():
    assert sorted(p.name for p in SCENARIOS.glob("*.toml")) == sorted(SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_example_scenario_sweeps_loads_and_plots(tmp_path, name):
    runner = CliRunner()
    sets = [arg for value in SMALL[name] for arg in ("--set", value)]
    out = tmp_path / "out"
    swept = runner.invoke(
        app, ["sweep", str(SCENARIOS / name), "--out", str(out), "--workers", "1", *sets, "--json"]
    )
    assert swept.exit_code == 0, swept.output
    report = json.loads(swept.output)
    scenario = read_scenario(SCENARIOS / name, dict(parse_assignment(v) for v in SMALL[name]))
    assert report["points"] == len(scenario.points)
    results = load(out)
    assert len(results["points"]) == len(scenario.points)
    if "runs" in results:  # one row per run of every point
        runs = results["runs"]
        per_point = runs.groupby("point").size()
        assert (per_point == scenario.points[0].params["runs"]).all()
    plotted = runner.invoke(app, ["plot", str(out)])
    assert plotted.exit_code == 0, plotted.output
    figures = sorted((out / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)


def test_sweep_and_plot_refuse_bad_input_with_one_line(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario]\nsimulation = 'collective'\n[grid]\nstak = [1.0]\n")
    result = runner.invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert "[grid] stak: unknown parameter" in result.output
    assert not (tmp_path / "o").exists()
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and "error: " in result.output


@pytest.mark.slow
def test_local_and_ray_write_identical_tables(tmp_path, ray_session):
    scenario = read_scenario(
        SCENARIOS / "collective-sweep.toml", {"runs": 2, "tasks": 600, "assets": 20}
    )
    local = run_sweep(scenario, tmp_path / "local", backend="local", workers=2)
    on_ray = run_sweep(scenario, tmp_path / "ray", backend="ray", workers=2)
    assert local.computed == on_ray.computed == len(scenario.points)
    a, b = load(tmp_path / "local"), load(tmp_path / "ray")
    assert set(a) == set(b) == {"points", "runs", "steps"}
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def test_scenario_check_lists_the_points_and_simulations_their_parameters():
    runner = CliRunner()
    checked = runner.invoke(
        app, ["scenario", "check", str(SCENARIOS / "collective-sweep.toml"), "--json"]
    )
    assert checked.exit_code == 0, checked.output
    listed = json.loads(checked.output)
    scenario = read_scenario(SCENARIOS / "collective-sweep.toml")
    assert [p["key"] for p in listed["points"]] == [p.key for p in scenario.points]
    assert [p["variant"] for p in listed["points"][:2]] == ["coll-stake", "coll-sr"]
    names = runner.invoke(app, ["scenario", "simulations", "--json"])
    assert names.exit_code == 0, names.output
    one = runner.invoke(app, ["scenario", "simulations", "fedavg", "--json"])
    assert one.exit_code == 0, one.output
    assert "noise_multiplier" in {p["parameter"] for p in json.loads(one.output)["parameters"]}
    unknown = runner.invoke(app, ["scenario", "simulations", "weather"])
    assert unknown.exit_code == 2 and "unknown simulation 'weather'" in unknown.output
