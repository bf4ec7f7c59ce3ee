"""`mercat storage ...`: put, get, stat, verify, measure, place; bad input is exit 2."""

import json
import os

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.cli.storage import parse_size
from mercat.errors import InvalidParameterError

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
    assert info == {"cid": cid, "codec": "dag-pb", "bytes": 2_500_000, "blocks": 11}  # 10 + root
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


def _measured_as(monkeypatch, read_seconds, write_seconds):
    """`storage measure` with the store's writes and reads really done (and the objects
    deleted), but the times replaced by the given functions of the size: a test of the
    behaviour may not depend on how loaded the machine is (timings live in benchmarks/)."""
    from mercat.storage import latency

    real = latency.measure_profile
    seen: list[int] = []

    def measured(store, sizes, repeats=3, seed=0, progress=None):
        points, _, _ = real(store, sizes, repeats, seed, progress)
        seen.extend(points)
        return points, [read_seconds(s) for s in points], [write_seconds(s) for s in points]

    monkeypatch.setattr(latency, "measure_profile", measured)
    return seen


def test_measure_fits_eq_1_and_place_ranks_by_it(tmp_path, monkeypatch):
    # eq. 1 with B_r = 100 MB/s, B_w = 50 MB/s, T_c = 0.02 s: the fit must give them back.
    seen = _measured_as(monkeypatch, lambda s: s / 1e8, lambda s: s / 5e7 + 0.02)
    out = run(
        "storage",
        "measure",
        "--workdir",
        str(tmp_path),
        "--sizes",
        "512KiB,4MiB",
        "--repeats",
        "2",
        "--json",
    )
    assert out.exit_code == 0, out.output
    fit = json.loads(out.stdout)
    assert seen == [512 << 10] * 2 + [4 << 20] * 2  # the objects were really written and read
    assert [p["bytes"] for p in fit["points"]] == seen
    assert fit["read_bandwidth_MBps"] == pytest.approx(100.0)
    assert fit["write_bandwidth_MBps"] == pytest.approx(50.0)
    assert fit["consensus_overhead_s"] == pytest.approx(0.02)
    assert fit["read_r2"] == pytest.approx(1.0) and fit["write_r2"] == pytest.approx(1.0)
    assert list(tmp_path.iterdir()) == []  # the objects were measured and deleted
    profile = f"local:{fit['read_bandwidth_MBps'] * 1e6}:{fit['write_bandwidth_MBps'] * 1e6}:0"
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
        "--profile",
        profile,
        "--json",
    )
    rows = json.loads(ranked.stdout)
    assert [r["platform"] for r in rows] == ["chain", "p2p", "local"]  # ties keep the order
    assert rows[0]["seconds"] == pytest.approx(10 * 1.0 + 2.0 + 3.0)
    assert rows[2]["seconds"] == pytest.approx(10 * 2.0 + 4.0)


def test_measure_refuses_write_times_that_do_not_grow_and_leaves_nothing(tmp_path, monkeypatch):
    # A busy machine can make the small object's write the slower one: eq. 1 then has no
    # bandwidth to fit, and measure says so instead of printing a negative one.
    _measured_as(monkeypatch, lambda s: s / 1e8, lambda s: 1.0 - s / 1e8)
    out = run("storage", "measure", "--workdir", str(tmp_path), "--sizes", "64KiB,1MiB")
    assert out.exit_code == 2
    assert "write times do not grow with size" in out.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("50MB", 50_000_000),
        ("1.5GB", 1_500_000_000),
        ("2.01GB", 2_010_000_000),  # binary floating point gave 2009999999
        ("64KiB", 65536),
        ("1.5KiB", 1536),
        ("2 MiB", 2 << 20),
        ("0", 0),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_sizes_take_decimal_and_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.5B", "0.5 bytes, not a whole number"),
        ("1.1KiB", "1126.4 bytes, not a whole number"),
        ("1.0000000000000000000000000000001KB", "not a whole number"),
        ("9" * 400, "above the largest file"),
        ("9223372036854775808", "above the largest file"),
        ("10000000000GB", "above the largest file"),
        ("1e6", "not a number of bytes"),
        ("-5MB", "not a number of bytes"),
        ("12parsecs", "not a number of bytes"),
    ],
)
def test_sizes_that_are_not_whole_bytes_or_absurd_are_refused(text, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_size(text)


@pytest.mark.parametrize(
    ("sizes", "extra", "message"),
    [
        ("64KiB", [], "2 distinct"),
        ("64KiB,64KiB", [], "2 distinct"),
        ("0B,1KB", [], ">= 1"),
        ("1KB,3GB", [], "above the 2 GB"),
        ("0.5B,1KB", [], "whole number"),
        ("1KB,,2KB", [], "not a number of bytes"),
        ("1KB,2KB", ["--name", "a:b"], "without ':'"),
        ("1KB,2KB", ["--workdir", "{tmp}/missing"], "not an existing directory"),
        ("1KB,2KB", ["--workdir", "{tmp}/file"], "not an existing directory"),
    ],
)
def test_measure_checks_everything_before_it_writes(tmp_path, sizes, extra, message):
    (tmp_path / "file").write_text("x")
    args = ["storage", "measure", "--workdir", str(tmp_path), "--sizes", sizes]
    out = run(*args, *[a.replace("{tmp}", str(tmp_path)) for a in extra])
    assert out.exit_code == 2, out.output
    assert message in out.output
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_get_to_a_path_that_cannot_be_written_is_exit_2_and_creates_nothing(tmp_path):
    store = str(tmp_path / "store")
    (tmp_path / "file.txt").write_text("x")
    cid = json.loads(
        run("storage", "put", str(tmp_path / "file.txt"), "--store", store, "--json").stdout
    )[0]["cid"]
    for target, message in (
        ("nodir/sub/out", "does not exist"),
        ("file.txt/x", "is not a directory"),
        (".", "is a directory"),
    ):
        out = run("storage", "get", cid, "-o", str(tmp_path / target), "--store", store)
        assert out.exit_code == 2, out.output
        assert message in out.output and "Traceback" not in out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "store"]
    assert (tmp_path / "file.txt").read_text() == "x"


def test_verify_lists_stray_entries_without_failing(tmp_path):
    store = tmp_path / "store"
    (tmp_path / "a").write_bytes(b"hello")
    assert run("storage", "put", str(tmp_path / "a"), "--store", str(store)).exit_code == 0
    (store / "blocks" / "stray.txt").write_text("x")
    out = run("storage", "verify", "--store", str(store), "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["blocks"] == 1 and report["corrupted"] == []
    assert report["ignored"] == [str(store / "blocks" / "stray.txt")]


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


def test_put_and_get_encrypted_with_a_key_or_a_sealed_key(tmp_path):
    from mercat.identity import Keypair

    store = str(tmp_path / "store")
    data = os.urandom(300_000)
    (tmp_path / "input.bin").write_bytes(data)
    provider = Keypair.generate()
    (tmp_path / "provider.key").write_text(provider.seed.hex() + "\n")
    out = run(
        "storage", "put", str(tmp_path / "input.bin"), "--store", store,
        "--seal-to", provider.public, "--json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    row = json.loads(out.stdout)[0]
    cid, key, sealed = row["cid"], row["key"], row["sealed"][provider.public]
    back = tmp_path / "back.bin"
    assert (
        run(
            "storage", "get", cid, "-o", str(back), "--store", store, "--content-key", key
        ).exit_code
        == 0
    )
    assert back.read_bytes() == data
    opened = run(
        "storage", "get", cid, "-o", "-", "--store", store,
        "--sealed", sealed, "--identity", str(tmp_path / "provider.key"),
    )  # fmt: skip
    assert opened.exit_code == 0 and opened.stdout_bytes == data
    plain = run("storage", "get", cid, "-o", str(tmp_path / "cipher.bin"), "--store", store)
    assert plain.exit_code == 0 and data[:1000] not in (tmp_path / "cipher.bin").read_bytes()
    # a wrong key: exit 2, one line, and the target is not created
    wrong = run(
        "storage",
        "get",
        cid,
        "-o",
        str(tmp_path / "x"),
        "--store",
        store,
        "--content-key",
        "00" * 32,
    )
    assert wrong.exit_code == 2 and "wrong key" in wrong.output
    assert not (tmp_path / "x").exists()
    other = Keypair.generate()
    (tmp_path / "other.key").write_text(other.seed.hex())
    stranger = run(
        "storage", "get", cid, "-o", "-", "--store", store,
        "--sealed", sealed, "--identity", str(tmp_path / "other.key"),
    )  # fmt: skip
    assert stranger.exit_code == 2 and "sealed to another key" in stranger.output


def test_a_key_out_file_is_private_and_never_overwritten(tmp_path):
    store = str(tmp_path / "store")
    (tmp_path / "a").write_bytes(b"secret")
    key_file = tmp_path / "a.key"
    put = ["storage", "put", str(tmp_path / "a"), "--store", store, "--encrypt"]
    out = run(*put, "--content-key-out", str(key_file))
    assert out.exit_code == 0, out.output
    assert "  key " not in out.stdout and oct(key_file.stat().st_mode & 0o777) == "0o600"
    cid = out.stdout.split()[0]
    got = run(
        "storage", "get", cid, "-o", "-", "--store", store, "--content-key-file", str(key_file)
    )
    assert got.stdout_bytes == b"secret"
    again = run(*put, "--content-key-out", str(key_file))
    assert again.exit_code == 2 and "not overwriting" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seal-to", "ab" * 31], "64 lowercase hex"),
        (["--encrypt", "--content-key-out", "k", "--chunk-size", "1KiB", "{a}", "{a}"], "one file"),
        (["--max-links", "1"], "links per node"),
        (["--chunk-size", "100B"], "chunk size"),
    ],
)
def test_bad_put_options_are_refused_before_anything_is_stored(tmp_path, args, message):
    (tmp_path / "a").write_bytes(b"x")
    args = [a.replace("{a}", str(tmp_path / "a")) for a in args]
    files = [] if any(str(tmp_path) in a for a in args) else [str(tmp_path / "a")]
    out = run("storage", "put", *files, *args, "--store", str(tmp_path / "store"))
    assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "store" / "blocks").exists() or not any(
        (tmp_path / "store" / "blocks").iterdir()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--content-key", "abc"], "64 hex digits"),
        (["--content-key", "00" * 32, "--content-key-file", "k"], "one of"),
        (["--sealed", "00" * 80], "go together"),
    ],
)
def test_bad_get_keys_are_refused(tmp_path, args, message):
    store = str(tmp_path / "store")
    (tmp_path / "a").write_bytes(b"x")
    cid = run("storage", "put", str(tmp_path / "a"), "--store", store).stdout.split()[0]
    out = run("storage", "get", cid, "-o", str(tmp_path / "out"), "--store", store, *args)
    assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "out").exists()


def test_the_cli_cid_is_ipfs_adds(tmp_path):
    data = (__import__("pathlib").Path(__file__).parent / "vectors" / "multiblock.txt").read_bytes()
    (tmp_path / "m.txt").write_bytes(data)
    out = run(
        "storage", "put", str(tmp_path / "m.txt"), "--store", str(tmp_path / "s"),
        "--chunk-size", "256B",
    )  # fmt: skip
    assert out.stdout.split()[0] == "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa"
