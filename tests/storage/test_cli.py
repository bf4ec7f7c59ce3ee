"""`mercat storage ...`: put, get, stat, verify, measure, place; bad input is exit 2."""

import json
import os

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.cli.storage import parse_size

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def test_a_file_round_trips_through_the_store(tmp_path):
    data = os.urandom(2_500_000)
    (tmp_path / "model.bin").write_bytes(data)
    store = str(tmp_path / "store")
    out = run("storage", "put", str(tmp_path / "model.bin"), "--store", store, "--json")
    assert out.exit_code == 0, out.output
    cid = json.loads(out.stdout)[0]["cid"]
    assert (
        run("storage", "get", cid, "-o", str(tmp_path / "back.bin"), "--store", store).exit_code
        == 0
    )
    assert (tmp_path / "back.bin").read_bytes() == data
    info = json.loads(run("storage", "stat", cid, "--store", store, "--json").stdout)
    assert info == {"cid": cid, "codec": "dag-json", "bytes": 2_500_000, "blocks": 3}
    piped = run("storage", "put", "-", "--store", store, "--json", input=data)
    assert json.loads(piped.stdout)[0]["cid"] == cid


def test_verify_exits_2_on_a_corrupted_block(tmp_path):
    store = tmp_path / "store"
    (tmp_path / "a").write_bytes(b"hello")
    assert run("storage", "put", str(tmp_path / "a"), "--store", str(store)).exit_code == 0
    assert run("storage", "verify", "--store", str(store)).exit_code == 0
    block = next((store / "blocks").rglob("bafkrei*"))
    block.write_bytes(b"jello")
    out = run("storage", "verify", "--store", str(store), "--json")
    assert out.exit_code == 2
    assert json.loads(out.stdout)["corrupted"] == [block.name]


def test_measure_fits_eq_1_and_place_ranks_by_it(tmp_path):
    out = run(
        "storage",
        "measure",
        "--store",
        str(tmp_path / "s"),
        "--sizes",
        "512KiB,4MiB",
        "--repeats",
        "2",
        "--json",
    )
    assert out.exit_code == 0, out.output
    fit = json.loads(out.stdout)
    assert fit["read_bandwidth_MBps"] > 0 and len(fit["points"]) == 4
    ranked = run(
        "storage",
        "place",
        "--size",
        "200MB",
        "--reads",
        "10",
        "--profile",
        "p2p:1e8:5e7:0",
        "--profile",
        "chain:2e8:1e8:3",
        "--json",
    )
    rows = json.loads(ranked.stdout)
    assert [r["platform"] for r in rows] == ["chain", "p2p"]
    assert rows[0]["seconds"] == pytest.approx(10 * 1.0 + 2.0 + 3.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("50MB", 50_000_000),
        ("1.5GB", 1_500_000_000),
        ("64KiB", 65536),
        ("2 MiB", 2 << 20),
    ],
)
def test_sizes_take_decimal_and_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "storage",
                "stat",
                "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
                "--store",
                "{tmp}/nowhere",
            ],
            "no store at",
        ),
        (["storage", "put", "{tmp}/missing.bin", "--store", "{tmp}/s"], "not a readable file"),
        (["storage", "put", "{tmp}/a", "--store", "{tmp}/s", "--chunk-size", "12parsecs"], "size"),
        (["storage", "get", "not-a-cid", "-o", "{tmp}/x", "--store", "{tmp}"], "not a CID"),
        (["storage", "place", "--size", "1MB", "--profile", "p2p:fast"], "NAME:READ"),
        (["storage", "place", "--size", "1MB", "--profile", "p2p:0:1:0"], "read_bandwidth"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "a").write_bytes(b"a")
    out = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert out.exit_code == 2, out.output
    assert message in out.output
    assert not (tmp_path / "nowhere").exists()
