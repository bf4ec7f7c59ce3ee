"""`mercat clear --option KEY=VALUE`: mechanism options from the command line, validated
before the market is read, with a message that names the mechanism's options."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercat.cli import app

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "seed001_running_example.json")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_posted_price_options_reach_the_mechanism():
    out = run("clear", EXAMPLE, "-m", "posted-price", "-O", "tick=0.1", "-O", "makers=3", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["allocation"] == {"t1": {"n1": 1.0, "n2": 1.0}}
    # Tick 0.1: the margin ends at one tick at least (the default tick, 0.001, would end far
    # below) and at most one tick per participant (three).
    assert 0.1 - 1e-9 <= data["margin"] <= 0.3 + 1e-9
    assert data["diagnostics"]["tick"] == 0.1
    assert data["diagnostics"]["makers"] == ["perfect-information"] * 3


def test_a_json_list_value():
    out = run(
        "clear",
        EXAMPLE,
        "-m",
        "posted-price",
        "-O",
        'makers=["perfect-information", "noisy-estimates"]',
        "--json",
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["diagnostics"]["makers"] == [
        "perfect-information",
        "noisy-estimates",
    ]


@pytest.mark.parametrize(
    ("mechanism", "options", "message"),
    [
        ("posted-price", ["speed=3"], "has no option 'speed'; its options: makers, tick"),
        ("double-auction", ["x=1"], "has no option 'x'; its options: tie_break"),
        ("posted-price", ["tick"], "--option must look like KEY=VALUE"),
        ("posted-price", ["tick=0.1", "tick=0.2"], "--option tick given twice"),
        ("posted-price", ["tick=-1"], "tick must be > 0"),
        ("posted-price", ["makers={}"], "makers must be a count or a list of strategy names"),
        ("vcg", ["groups=1.5"], "groups must be an integer >= 1"),
    ],
)
def test_bad_options_are_rejected_with_a_clear_message(mechanism, options, message):
    args = ["clear", EXAMPLE, "-m", mechanism]
    for option in options:
        args += ["-O", option]
    out = run(*args)
    assert out.exit_code == 2
    assert message in " ".join(out.output.split())
    assert "Traceback" not in out.output


def test_options_are_checked_before_the_market_is_read(tmp_path):
    out = run("clear", tmp_path / "missing.json", "-m", "posted-price", "-O", "speed=3")
    assert out.exit_code == 2
    assert "has no option 'speed'" in out.output
