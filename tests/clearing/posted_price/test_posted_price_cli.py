"""`mercat dynamics` and `mercat clear --mechanism posted-price` through the real commands."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercat.cli import app

EXAMPLE = str(Path(__file__).resolve().parents[3] / "examples" / "seed001_running_example.json")
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_dynamics_json_trace_of_attempt_4():
    out = run(
        "dynamics", "--attempt", 4, EXAMPLE, "--makers", 2, "--rounds", 50, "--tick", 0.1, "--json"
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["converged"] and data["attempt"] == 4 and data["cycle"] is None
    assert [m["strategy"] for m in data["makers"]] == ["perfect-information"] * 2
    first, last = data["steps"][0], data["steps"][-1]
    assert first["outcome"] == "opened" and first["margin"] == 4.0 and first["welfare"] == 4.0
    assert first["proposal"]["max_payments"] == {"t1": 6.0}
    assert last["outcome"] == "passed"
    assert data["final"]["allocation"] == {"t1": {"n1": 1.0, "n2": 1.0}}
    assert 0 <= data["final"]["margin"] <= 0.3 + 1e-9
    margins = [s["margin"] for s in data["steps"]]
    assert margins == sorted(margins, reverse=True)


def test_dynamics_attempt_3_reports_its_cycle():
    out = run("dynamics", "--attempt", 3, EXAMPLE, "--rounds", 400, "--tick", 0.05)
    assert out.exit_code == 0, out.output
    assert "cycles: the round-" in out.stdout
    assert "t2→n1" in out.stdout or "t2→n2" in out.stdout


def test_dynamics_attempt_1_and_2_tables():
    out = run("dynamics", "--attempt", 1, EXAMPLE, "--makers", 3)
    assert out.exit_code == 0, out.output
    assert "centralized market-maker" in out.stdout and "mm1 4" in out.stdout
    out = run("dynamics", "--attempt", 2, EXAMPLE, "--rounds", 10, "--tick", 0.5)
    assert out.exit_code == 0, out.output
    assert "minimum margin" in out.stdout and "converged" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--attempt", 7), "attempt must be one of 1, 2, 3, 4"),
        (("--makers", 0), "--makers must be an integer >= 1"),
        (("--tick", 0), "tick must be > 0"),
        (("--strategy", "psychic"), "unknown market-maker strategy 'psychic'"),
        (("--strategy", "perfect-information,noisy-estimates,noisy-estimates"), "3 strategies"),
        (("--attempt", 2, "--specialization"), "no notion of conflicting participants"),
    ],
)
def test_dynamics_rejects_bad_options(args, message):
    out = run("dynamics", EXAMPLE, *args)
    assert out.exit_code == 2
    assert message in out.output


def test_dynamics_with_noisy_makers_is_reproducible():
    args = (
        "dynamics",
        EXAMPLE,
        "--strategy",
        "noisy-estimates",
        "--sigma",
        0.3,
        "--tick",
        0.1,
        "--seed",
        4,
        "--json",
    )
    first, again = run(*args), run(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == again.stdout


def test_clear_with_posted_price_runs_attempt_4():
    out = run("clear", EXAMPLE, "--mechanism", "posted-price", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["allocation"] == {"t1": {"n1": 1.0, "n2": 1.0}}
    assert data["welfare"] == 4 and 0 <= data["margin"] <= 0.003 + 1e-9
    assert data["checks"]["individually_rational"] and data["checks"]["budget_balanced"]
    assert data["certificate"] == {"bound": None, "gap": None, "proven": False}
    assert data["diagnostics"]["converged"] and data["diagnostics"]["attempt"] == 4


@pytest.mark.parametrize(("seed", "fails"), [(0, False), (1, True)])
def test_dynamics_reports_what_settles_not_only_what_was_proposed(seed, fails):
    # A noisy maker's final proposal can fail individual rationality against the true values
    # and costs: then nothing of it trades, and the settled welfare says so.
    out = run(
        "dynamics",
        EXAMPLE,
        "--strategy",
        "noisy-estimates,noisy-estimates",
        "--sigma",
        0.3,
        "--tick",
        0.1,
        "--seed",
        seed,
        "--json",
    )
    assert out.exit_code == 0, out.output
    final = json.loads(out.stdout)["final"]
    assert bool(final["failed"]) is fails
    assert final["welfare"] == 4.0
    if fails:
        assert final["settled_allocation"] == {} and final["settled_welfare"] == 0
    else:
        assert final["settled_allocation"] == final["allocation"]
        assert final["settled_welfare"] == final["welfare"]
