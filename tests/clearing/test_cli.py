"""`mercat clear` and `mercat generate` through the real command group."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.market.generators import double_auction_market, running_example, standard_auction_market
from mercat.market.market_io import loads_market

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "seed001_running_example.json")
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_clear_running_example_json():
    out = run("clear", EXAMPLE, "--mechanism", "optimal", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["allocation"] == {"t1": {"n1": 1.0, "n2": 1.0}}
    assert data["welfare"] == 4 and data["margin"] == 0 and data["surplus"] == 4
    assert data["payments"] == {"t1": 2.0} and data["rewards"] == {"n1": 1.0, "n2": 1.0}
    assert data["checks"]["individually_rational"] and data["checks"]["budget_balanced"]
    assert data["certificate"] == {"bound": 4.0, "gap": 0.0, "proven": True}


def test_clear_prints_tables_for_people():
    out = run("clear", EXAMPLE)
    assert out.exit_code == 0, out.output
    for word in ("t1", "n1, n2", "welfare W", "individually rational", "proven optimal"):
        assert word in out.stdout


def test_generate_then_clear_a_double_auction(tmp_path):
    path = tmp_path / "da.json"
    out = run(
        "generate", "double-auction", "--requests", 200, "--nodes", 8, "--seed", 4, "--out", path
    )
    assert out.exit_code == 0, out.output
    assert "double auction (200 users, 8 providers)" in " ".join(out.stderr.split())
    out = run("clear", path, "--mechanism", "double-auction", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["checks"]["individually_rational"] and data["checks"]["budget_balanced"]
    assert data["margin"] >= 0 and data["certificate"]["bound"] >= data["welfare"]
    assert data["diagnostics"]["buyer_price"] >= data["diagnostics"]["seller_price"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("running-example", running_example()),
        ("double-auction", double_auction_market(2, 12, 3)),
        ("standard-auction", standard_auction_market(2, 12, 3)),
    ],
)
def test_generate_writes_the_generators_market_to_stdout(kind, expected):
    out = run("generate", kind, "--requests", 12, "--nodes", 3, "--seed", 2)
    assert out.exit_code == 0, out.output
    assert loads_market(out.stdout) == expected


def test_generate_random_divisible_is_reproducible():
    first = run("generate", "random", "--seed", 9, "--divisible")
    again = run("generate", "random", "--seed", 9, "--divisible")
    assert first.stdout == again.stdout and loads_market(first.stdout).divisible


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("clear", EXAMPLE, "--mechanism", "nope"), "unknown mechanism 'nope'"),
        (("clear", "missing.json"), "cannot read market file"),
        (
            ("clear", EXAMPLE, "-m", "double-auction"),
            "double-auction: the market must be divisible",
        ),
        (("clear", EXAMPLE, "-m", "double-auction", "--time-limit", 1), "takes no --time-limit"),
        (("clear", EXAMPLE, "--time-limit", -1), "time_limit must be > 0"),
        (
            ("clear", EXAMPLE, "--time-limit", 1, "-O", "time_limit=5"),
            "--option time_limit given twice",
        ),
        (("generate", "lottery"), "'lottery' is not one of 'random'"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, message):
    out = run(*args)
    assert out.exit_code == 2
    assert message in " ".join(out.stderr.split()), out.stderr


def test_malformed_market_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"requests": [{"id": "t", "value": 1}], "nodes": [],
                               "conflicts": [{"requests": ["t", "x"]}]}))  # fmt: skip
    out = run("clear", bad)
    assert out.exit_code == 2 and "unknown request 'x'" in out.stderr


def test_a_margin_that_is_rounding_residue_shows_as_zero_and_the_json_keeps_it(tmp_path):
    # The zero-margin prices of this market leave a margin of about -1.1e-16: the table says
    # 0 (the clearing is budget balanced and non-extractive by its own checks), --json keeps
    # the float as computed.
    path = tmp_path / "r.json"
    assert run("generate", "random", "-n", 12, "--nodes", 4, "--seed", 0, "-o", path).exit_code == 0
    data = json.loads(run("clear", path, "-m", "optimal", "--json").stdout)
    assert data["margin"] != 0.0 and abs(data["margin"]) < 1e-12
    (line,) = [
        row for row in run("clear", path, "-m", "optimal").stdout.splitlines() if "margin M" in row
    ]
    assert line.split("│")[2].strip() == "0", line
