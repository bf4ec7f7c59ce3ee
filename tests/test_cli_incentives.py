"""The command line of the collective-incentive part: results as JSON, errors as exit 2."""

import json

import pytest
from typer.testing import CliRunner

from mercat.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_calibrate_json():
    out = run("calibrate", "--target", "0.01", "--assets", "4", "--failure-rate", "0.02", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["reward"] == pytest.approx(0.01 / 0.99)
    assert data["asset_target"] == pytest.approx(1 - 0.99**0.25)
    assert data["expected_loss_at_rate"] == pytest.approx(0.01 / 0.99)


def test_ruin_side_by_side_json():
    out = run(
        "ruin",
        "--stake-ratio",
        "5",
        "--failure-rate",
        "0.15",
        "--target",
        "0.2",
        "--horizon",
        "2000",
        "--samples",
        "5000",
        "--json",
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    methods = {e["method"]: e for e in data["estimates"]}
    assert set(methods) == {"exact", "lundberg", "diffusion", "monte-carlo"}
    assert methods["exact"]["probability"] <= methods["lundberg"]["probability"]
    mc = methods["monte-carlo"]
    assert mc["low"] <= methods["exact"]["probability"] <= mc["high"]


def test_simulate_collective_json_matches_the_library():
    out = run(
        "simulate",
        "collective",
        "--assets",
        "20",
        "--tasks",
        "1000",
        "--runs",
        "3",
        "--seed",
        "2",
        "--json",
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    from mercat.scenarios.collective_config import CollectiveConfig
    from mercat.scenarios.collective_sim import simulate

    expected = simulate(CollectiveConfig(assets=20, tasks=1000), runs=3, seed=2).summary()
    assert data["summary"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "--target", "1.5"], "open interval (0, 1)"),
        (["calibrate", "--target", "0.1", "--penalty", "-2"], "penalty must be > 0"),
        (
            ["ruin", "--stake-ratio", "-1", "--failure-rate", "0.1", "--target", "0.2"],
            "stake_ratio",
        ),
        (
            [
                "ruin",
                "--stake-ratio",
                "1",
                "--failure-rate",
                "0.1",
                "--target",
                "0.2",
                "--method",
                "x",
            ],
            "method",
        ),
        (["simulate", "collective", "--collective", "coll-x"], "unknown collective rule 'coll-x'"),
        (["simulate", "collective", "--stake", "-3"], "stake must be > 0"),
        (["simulate", "collective", "--runs", "0"], "runs"),
        (["simulate", "collective", "--engine", "tpu"], "engine"),
        (["simulate", "collective", "--workers", "4"], "--workers applies to --engine pipeline"),
        (
            ["simulate", "collective", "--engine", "reference", "--tasks-per-round", "3"],
            "--tasks-per-round applies to --engine pipeline only",
        ),
        (["reproduce", "fig99"], "unknown experiment 'fig99'"),
        (["reproduce", "fig3", "--quick", "--out", __file__], "cannot hold the report"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(args, message):
    out = run(*args)
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "collective", "--runs", "2.5"],
        ["calibrate", "--target", "abc"],
        ["ruin", "--stake-ratio", "1"],
    ],
)
def test_malformed_options_are_usage_errors(args):
    out = run(*args)
    assert out.exit_code == 2
    assert "Traceback" not in out.output


def test_an_error_stays_one_line_and_its_brackets_are_text(tmp_path):
    # A long path must not be broken by a newline (CI's checkout path is longer than a
    # developer's), and brackets in it are not rich markup.
    deep = tmp_path / ("d" * 120) / "[bold]report.txt"
    deep.parent.mkdir(parents=True)
    deep.write_text("a file, not a folder")
    out = run("reproduce", "fig3", "--quick", "--out", str(deep))
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1, out.output
    assert str(deep) in lines[0]
    assert "cannot hold the report" in lines[0]
