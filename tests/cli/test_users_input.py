"""What `mercat clear`, `dynamics`, `reproduce` and `simulate` do with careless or hostile
input: one line on stderr and exit code 2, or the right answer; never a traceback."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cli_runs import one_line_error, run

# Rich reads `[...]` as markup: `[/x]` closes no tag (MarkupError), `[bold]` vanishes.
ODD_IDS = ["t[/x]", "u[bold]v", "w[red]"]


@pytest.fixture
def odd_market(tmp_path):
    path = tmp_path / "odd.json"
    requests = [{"id": rid, "value": 2} for rid in ODD_IDS]
    path.write_text(json.dumps({"requests": requests, "nodes": [{"id": "n[/y]", "cost": 1}]}))
    return path


def test_clear_prints_ids_with_brackets_as_they_are(odd_market):
    out = run("clear", odd_market)
    assert out.exit_code == 0, out.output
    for rid in [*ODD_IDS, "n[/y]"]:
        assert rid in out.stdout


def test_dynamics_prints_ids_with_brackets_as_they_are(odd_market):
    out = run("dynamics", odd_market, "--rounds", 3, "--tick", 0.5)
    assert out.exit_code == 0, out.output
    assert "n[/y]" in out.stdout


def test_reproduce_names_a_report_directory_with_brackets(tmp_path, monkeypatch):
    from mercat.report import experiments

    def run_experiment(name, context):
        return SimpleNamespace(seconds=0.0, facts={})

    monkeypatch.setattr(experiments, "run_experiment", run_experiment)
    out_dir = tmp_path / "report[/x]"
    out = run("reproduce", "fig3", "--out", out_dir)
    assert out.exit_code == 0, out.output
    assert "report[/x]" in out.stdout.replace("\n", "")


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed001_running_example.json"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--makers", 10**23], "--makers must be at most 1000"),
        (["--makers", 1001], "--makers must be at most 1000"),
        (["--rounds", -1], "--rounds must be an integer >= 1"),
        (["--tick", 0], "--tick must be > 0"),
        (["--tick", "nan"], "--tick must be finite"),
        (["--penalty", "inf"], "--penalty must be finite"),
        (["--penalty", -1], "--penalty must be >= 0"),
    ],
)
def test_dynamics_refuses_bad_options_in_one_line_before_it_starts(options, message):
    # The rounds, tick and penalty were checked after the progress bar's first line (two
    # lines on stderr); 10**23 makers overflowed a tuple's size (a traceback).
    one_line_error(run("dynamics", EXAMPLE, *options), message)


BIG = 10**23


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--runs", BIG], "--runs must be at most 2147483647"),
        (["--assets", BIG], "assets must be at most 2147483647"),
        (["--tasks", BIG], "tasks must be at most 2147483647"),
        (["--interval", BIG], "replacement_interval must be at most 2147483647"),
        (["--combinations", BIG], "combinations_per_asset must be at most 2147483647"),
        (["--window", 0], "--window must be an integer >= 1"),
    ],
)
def test_simulate_collective_refuses_huge_counts_in_one_line(options, message):
    # Each ended in a traceback from numpy or the engines (a bad --window only after every
    # run had finished).
    out = run("simulate", "collective", "--runs", 1, "--tasks", 50, "--assets", 10, *options)
    one_line_error(out, message)


def test_simulate_collective_says_when_memory_runs_out(monkeypatch):
    from mercat.scenarios import collective_sim

    def simulate(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB for an array")

    monkeypatch.setattr(collective_sim, "simulate", simulate)
    out = run("simulate", "collective", "--runs", 1, "--json")
    one_line_error(out, "not enough memory", "74.5 GiB", "lower --runs")


def test_simulate_cloudchain_refuses_a_huge_community_in_one_line():
    # 10**23 community nodes were drawn one by one before any check: it never returned.
    out = run("simulate", "cloudchain", "--community", BIG, "--json")
    one_line_error(out, "community must be at most 10,000")


def test_simulate_fedavg_refuses_a_huge_round_count_in_one_line():
    # 10**23 rounds ended in numpy's "Maximum allowed dimension exceeded" traceback.
    out = run("simulate", "fedavg", "--rounds", BIG, "--clients", 5, "--json")
    one_line_error(out, "rounds must be at most 1,000,000")


def test_reproduce_refuses_a_huge_run_count_before_any_experiment(tmp_path):
    out = run("reproduce", "table1", "--runs", BIG, "--out", tmp_path / "report")
    one_line_error(out, "--runs must be at most 2147483647")
    assert not (tmp_path / "report" / "table1").exists()


def test_generate_leaves_the_earlier_file_when_a_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    target.write_text("earlier\n")
    real_write_text = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    out = run("generate", "running-example", "-o", target)
    one_line_error(out, "cannot write", "No space left on device")
    monkeypatch.undo()
    assert target.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_reproduce_refuses_a_directory_that_takes_no_files_before_any_experiment(
    tmp_path, monkeypatch
):
    # As root, chmod does not stop writes: the refusal is simulated.
    from mercat.report import experiments

    ran = []
    monkeypatch.setattr(experiments, "run_experiment", lambda name, context: ran.append(name))
    real_write_bytes = Path.write_bytes

    def read_only(self, data):
        if self.parent.name == "report":
            raise PermissionError(13, "Permission denied", str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    (tmp_path / "report").mkdir()
    out = run("reproduce", "fig3", "--out", tmp_path / "report")
    one_line_error(out, "cannot hold the report: Permission denied")
    assert ran == []


def test_clear_refuses_a_huge_maker_count_for_posted_prices_in_one_line(odd_market):
    out = run("clear", str(odd_market), "-m", "posted-price", "-O", f"makers={10**23}")
    one_line_error(out, "makers must be at most 1000")


def test_an_error_line_prints_the_message_as_raised(tmp_path):
    """Spaces, brackets and colons in a message print as they are: two spaces stayed one
    (the message's whitespace was collapsed), ':smile:' became an emoji."""
    name = "no  such [/x] :smile:.json"
    out = run("clear", tmp_path / name)
    one_line_error(out, f"{name}'")


def test_an_error_message_of_several_lines_prints_as_one(monkeypatch, odd_market):
    from mercat.errors import InvalidMarketError
    from mercat.market import market_io

    def load_market(path):
        raise InvalidMarketError("the market  'm.json' is refused:\n  n1  1.0\n  n2  2.0\n")

    monkeypatch.setattr(market_io, "load_market", load_market)
    out = run("clear", odd_market)
    one_line_error(out)
    assert out.stderr == "error: the market  'm.json' is refused: n1  1.0 n2  2.0\n"
