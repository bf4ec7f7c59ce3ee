"""`mercat auctioneer init|local|trials` and the report's seed003 experiment."""

import json

import pytest
from typer.testing import CliRunner

from mercat.auctioneer.config import load_peers
from mercat.auctioneer.deviations import CATALOGUE
from mercat.auctioneer.local import default_vcg_gap
from mercat.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_init_writes_a_peers_file_the_provider_reads(tmp_path):
    out = run("auctioneer", "init", "--providers", 5, "--k", 2, "--mechanism", "vcg",
              "--out", tmp_path, "--base-port", 7000)  # fmt: skip
    assert out.exit_code == 0, out.output
    peers = load_peers(tmp_path / "peers.toml")
    assert peers.params.providers == ("p1", "p2", "p3", "p4", "p5")
    assert peers.params.k == 2 and peers.params.mechanism == "vcg"
    assert [p.address for p in peers.peers][:2] == ["tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002"]
    assert (tmp_path / "p3.key").stat().st_mode & 0o777 == 0o600


def test_local_runs_rounds_survives_a_crash_and_reports_json():
    out = run("auctioneer", "local", "--providers", 8, "--executing", 3, "--k", 1,
              "--users", 60, "--rounds", 3, "--crash-round", 1, "--phase-timeout", 1.0,
              "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    outcomes = [r["ok"] for r in data["rounds"]]
    assert outcomes == [True, False, True]
    assert data["rounds"][1]["note"] == "p3 killed before this round"
    assert data["summary"]["all_match_centralized"] is True
    # ⊥ by the providers' own timeouts, not the client's: every provider alive answered (only
    # the killed one is missing), before the client's round timeout (bid window + 3 phases
    # + the task timeout + 5 s)
    assert data["rounds"][1]["reason"] == "no result from p3"
    assert data["rounds"][1]["seconds"] < 2.0 + 3 * 1.0 + 120.0 + 5.0
    assert data["summary"]["vcg_gap"] is None  # a double auction has no gap
    milestones = data["rounds"][0]["phases"]  # the slowest provider's, in seconds
    assert list(milestones) == ["bids", "commit", "reveal", "validate", "outcome"]
    assert milestones["outcome"] <= data["rounds"][0]["seconds"]


def test_local_vcg_proves_where_proofs_are_affordable_and_certifies_elsewhere():
    # The demonstration (`--users 1000 --mechanism vcg`) must finish: proofs are measured
    # affordable up to 125 users and from 1,000 to 2,000 (many users per provider); between
    # and above, a proof can take minutes, so the default is a certified 1% gap there.
    sizes = (10, 125, 126, 999, 1000, 2000, 2001)
    assert [default_vcg_gap(n) for n in sizes] == [0.0, 0.0, 0.01, 0.01, 0.0, 0.0, 0.01]


def test_trials_count_and_nothing_is_manipulated():
    out = run("auctioneer", "trials", "--trials", 1, "--mechanism", "double-auction", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["totals"]["manipulated"] == 0
    attacks = {"open-round-early", "empty-batch-opens", "flood-rounds"}  # when rounds open
    assert attacks <= {case["deviation"] for case in data["cases"]}
    assert data["totals"]["trials"] == len(data["cases"]) == 6 * (len(CATALOGUE) + 1)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("auctioneer", "local", "--providers", 2, "--k", 1), "needs m > 2k"),
        (
            ("auctioneer", "local", "--mechanism", "posted"),
            "'posted' is not one of double-auction, vcg",
        ),
        (
            ("auctioneer", "trials", "--mechanism", "posted"),
            "'posted' is not one of double-auction, vcg",
        ),
        (
            ("bid", "--peers", "/nonexistent.toml", "--round", 0, "--bid", "u:buy:1:1"),
            "does not exist",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(args, words):
    out = run(*args)
    assert out.exit_code == 2
    assert words in " ".join(out.output.split())


@pytest.mark.slow
def test_the_seed003_experiment_runs_and_reports(tmp_path, monkeypatch):
    from mercat.auctioneer import experiments, measure
    from mercat.report import experiments as registry

    # Fewer and smaller clusters than the report's (each one starts its processes).
    monkeypatch.setattr(measure, "FIG4_CONFIGS", ((1, 0), (3, 1)))
    monkeypatch.setattr(measure, "FIG5_GROUPS", ((1, 1, 0), (2, 4, 1)))
    monkeypatch.setattr(
        experiments,
        "QUICK",
        {
            "fig4_users": [50, 1000],
            "fig4_rounds": 1,
            "fig5_users": [8],
            "trials": 1,
            "trial_mechanisms": ("double",),
        },
    )
    assert "seed003" in registry.experiments()
    context = registry.ExperimentContext(out_dir=tmp_path, quick=True, show_progress=False)
    section = registry.run_experiment("seed003", context)
    assert section.facts["deviation_trials"]["manipulated"] == 0
    assert section.facts["outputs_equal_centralized"] is True
    bar = section.facts["fig4_bar"]
    assert set(bar) == {"users", "cpus", "centralized_seconds", "centralized_cpu_seconds", "k1"}
    # None where the trusted auctioneer's CPU time was below the clock's resolution
    assert bar["k1"]["cpu_floor_ratio"] is None or bar["k1"]["cpu_floor_ratio"] >= 0
    assert "0.00×" not in section.summary
    assert section.facts["fig5_speedups"]["by_users"][0]["users"] == 8
    for figure in section.figures:
        assert (tmp_path / figure.path).stat().st_size > 1000
    assert "Deviation trials" in section.summary
