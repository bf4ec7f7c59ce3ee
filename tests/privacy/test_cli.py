"""`mercat privacy check|calibrate` and `mercat simulate fedavg`: JSON out, exit codes."""

import json

import pytest
from typer.testing import CliRunner

from mercat.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_check_exits_0_within_budget_and_1_over_it():
    ok = run(
        "privacy",
        "check",
        "--noise-multiplier",
        "1.1",
        "--epsilon",
        "2",
        "--rounds",
        "100",
        "--sampling-rate",
        "0.01",
        "--json",
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["compliant"] is True and data["epsilon_actual"] < 2
    over = run("privacy", "check", "--noise-multiplier", "1.0", "--epsilon", "1", "--json")
    assert over.exit_code == 1
    assert json.loads(over.stdout)["epsilon_actual"] == pytest.approx(4.37718, abs=1e-5)


def test_calibrated_noise_passes_the_check():
    out = run("privacy", "calibrate", "--epsilon", "1.5", "--rounds", "20", "--json")
    assert out.exit_code == 0, out.output
    z = json.loads(out.stdout)["noise_multiplier"]
    args = ["privacy", "check", "--noise-multiplier", str(z), "--epsilon", "1.5"]
    assert run(*args, "--rounds", "20").exit_code == 0
    assert run(*args, "--rounds", "21").exit_code == 1


def test_simulate_fedavg_reports_accuracy_and_epsilon():
    out = run(
        "simulate", "fedavg", "--clients", "60", "--rounds", "8", "--sampling-rate", "0.5", "--json"
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert 0.5 < data["summary"]["final_accuracy"] <= 1.0
    assert data["summary"]["epsilon"] > 0
    same = run(
        "simulate",
        "fedavg",
        "--clients",
        "60",
        "--rounds",
        "8",
        "--sampling-rate",
        "0.5",
        "--engine",
        "reference",
        "--json",
    )
    assert json.loads(same.stdout)["summary"]["final_accuracy"] == data["summary"]["final_accuracy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["privacy", "check", "--noise-multiplier", "0", "--epsilon", "1"], "noise multiplier"),
        (
            ["privacy", "check", "--noise-multiplier", "1", "--epsilon", "1", "--delta", "2"],
            "delta",
        ),
        (
            ["privacy", "check", "--noise-multiplier", "1", "--epsilon", "1", "--accountant", "x"],
            "accountant",
        ),
        (["privacy", "calibrate", "--epsilon", "-1"], "epsilon"),
        (["privacy", "calibrate", "--epsilon", "1", "--sampling-rate", "0"], "sampling rate"),
        (["simulate", "fedavg", "--noise", "global"], "'global' is not one of"),
        (["simulate", "fedavg", "--engine", "gpu"], "engine"),
        (["simulate", "fedavg", "--clients", "0"], "clients"),
        (["simulate", "fedavg", "--seed", "-1"], "seed"),
        (["simulate", "fedavg", "--delta", "2"], "delta"),
        (
            ["privacy", "check", "--noise-multiplier", "1e-300", "--epsilon", "1"],
            "noise multiplier",
        ),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(args, message):
    out = run(*args)
    assert out.exit_code == 2
    assert message in out.output
