"""Long commands report progress off a terminal too: plain lines on stderr (a pipe, a log
file), nothing on stdout, and none with --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mercat.cli import app

SMALL_MARKET = ["--rounds", "2", "--providers", "1", "--requesters", "1"]


def test_market_run_reports_each_round_on_stderr():
    out = CliRunner().invoke(app, ["market", "run", *SMALL_MARKET])
    assert out.exit_code == 0, out.output
    lines = out.stderr.splitlines()
    assert lines[0] == "rounds (optimal on an in-memory book): 0/2"
    assert lines[-1].startswith("rounds (optimal on an in-memory book): 2/2 (100%)")
    assert "rounds (" not in out.stdout


def test_market_admission_reports_each_paired_run():
    out = CliRunner().invoke(app, ["market", "admission", "--rounds", "1", "--runs", "2"])
    assert out.exit_code == 0, out.output
    assert out.stderr.splitlines()[-1].startswith("paired runs: 2/2 (100%)")


def test_json_output_has_no_progress():
    out = CliRunner().invoke(app, ["market", "run", *SMALL_MARKET, "--json"])
    assert out.exit_code == 0, out.output
    assert out.stderr == ""
    assert json.loads(out.stdout)["audit"] == "ok"


def test_dynamics_reports_rounds_and_stops_early_at_a_fixed_point():
    example = "examples/seed001_running_example.json"
    out = CliRunner().invoke(app, ["dynamics", example, "--rounds", "50", "--tick", "0.05"])
    assert out.exit_code == 0, out.output
    lines = [x for x in out.stderr.splitlines() if x.startswith("best-response rounds")]
    assert lines[0] == "best-response rounds: 0/50"
    done = int(lines[-1].split(": ")[1].split("/")[0])
    assert 0 < done < 50  # converged (or cycled) before the most rounds
