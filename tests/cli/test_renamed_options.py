"""Old option names keep working for a release: each is read as its new name, with one note
on stderr, and gives the command exactly what the new name gives it."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from mercat.cli import app
from mercat.cli._inventory import commands, renamed_along, tree
from mercat.cli._options import canonical_mechanism, spell_new

ROOT = tree()


def parse(path: str, args: list[str]) -> dict:
    """The values the command at `path` would run with (nothing runs)."""
    *groups, leaf = path.split()
    ctx = typer.Context(ROOT, info_name="mercat")
    for name in groups:
        ctx = typer.Context(ctx.command.get_command(ctx, name), info_name=name, parent=ctx)
    command = ctx.command.get_command(ctx, leaf)
    return dict(command.make_context(leaf, list(args), parent=ctx).params)


def _name(token: str) -> str:
    """The option name in an argument: `--url=x` -> `--url`, `-otick=1` -> `-o`."""
    return token.split("=")[0] if token.startswith("--") else token[:2]


# (command, old spelling, new spelling): every old name mercat accepts.
RENAMED = [
    ("ledger accounts", ["--url", "sqlite:///x.db"], ["--ledger", "sqlite:///x.db"]),
    ("ledger init", ["--url=sqlite:///x.db"], ["--ledger=sqlite:///x.db"]),
    ("ledger init", ["--mechanism", "coll-sr"], ["--collective", "coll-sr"]),
    ("ledger init", ["--initial-stake", "5"], ["--stake", "5"]),
    ("simulate collective", ["--mechanism", "coll-rep"], ["--collective", "coll-rep"]),
    ("simulate cloudchain", ["--mechanism", "free"], ["--collective", "free"]),
    ("clear", ["m.json", "-o", "tick=0.1", "-otarget_gap=0"],
     ["m.json", "-O", "tick=0.1", "-O", "target_gap=0"]),
    ("market run", ["-o", "tick=0.1"], ["--option", "tick=0.1"]),
    ("serve", ["-o", "tick=0.1"], ["-O", "tick=0.1"]),
    ("generate", ["random", "-m", "3"], ["random", "--nodes", "3"]),
    ("generate", ["random", "-m3"], ["random", "--nodes", "3"]),
    ("generate", ["random", "--size=7"], ["random", "-n", "7"]),
    ("storage measure", ["--dir", "/tmp"], ["--workdir", "/tmp"]),
    ("market admission", ["--seeds", "2"], ["--runs", "2"]),
    ("bid", ["--providers", "p.toml", "--bid", "u:buy:1:1"],
     ["--peers", "p.toml", "--bid", "u:buy:1:1"]),
    ("auctioneer init", ["--bidders-from-ledger", "sqlite:///x.db"],
     ["--ledger", "sqlite:///x.db"]),
    ("auctioneer results", ["--log", "sqlite:///r.db"], ["--results", "sqlite:///r.db"]),
    ("storage put", ["f", "--key-out", "k"], ["f", "--content-key-out", "k"]),
    ("storage get", ["cid", "-o", "x", "--key", "ab", "--key-file", "k"],
     ["cid", "-o", "x", "--content-key", "ab", "--content-key-file", "k"]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "old", "new"), RENAMED, ids=lambda v: str(v))
def test_an_old_name_gives_what_the_new_one_gives_with_a_note(path, old, new, capsys):
    assert parse(path, new) == parse(path, old)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    renamed = renamed_along(ROOT, tuple(path.split()))
    olds = [name for name in map(_name, old) if name in renamed]
    assert olds and notes == [f"note: {o} is deprecated; use {renamed[o]}" for o in olds]


def test_every_old_name_is_tested():
    tested = {(path, _name(t)) for path, old, _ in RENAMED for t in old if t.startswith("-")}
    accepted = {(" ".join(p), old) for p, c in commands(ROOT) if not hasattr(c, "commands")
                for old in renamed_along(ROOT, p)}  # fmt: skip
    # a group's old names apply to each of its commands: one command of the group is enough
    groups = {(path.split()[0], old) for path, old in tested}
    missing = {(p, o) for p, o in accepted if (p, o) not in tested
               and (p.split()[0], o) not in groups}  # fmt: skip
    assert missing == set()


def test_values_that_look_like_old_names_are_left_alone():
    renamed = {"--url": "--ledger", "-o": "-O"}
    args = ["--set", "--url", "-o", "x", "--", "--url"]
    assert spell_new(args, renamed, {"--set"}) == ["--set", "--url", "-O", "x", "--", "--url"]


def test_an_old_mechanism_name_is_read_as_the_registry_s(capsys):
    assert canonical_mechanism("double") == "double-auction"
    assert canonical_mechanism("vcg") == "vcg"
    assert capsys.readouterr().err == "note: mechanism 'double' is deprecated; use double-auction\n"


def test_old_names_work_end_to_end(tmp_path):
    """Two commands run with their old names: the same output as with the new ones."""
    runner = CliRunner()
    url = f"sqlite:///{tmp_path}/old.db"
    made = runner.invoke(app, ["ledger", "init", "--url", url, "--mechanism", "coll-rep",
                               "--operator-key", str(tmp_path / "op.key"), "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "note: --url is deprecated; use --ledger" in made.stderr
    assert json.loads(made.stdout)["url"] == url
    old = runner.invoke(app, ["ledger", "accounts", "--url", url, "--json"])
    new = runner.invoke(app, ["ledger", "accounts", "--ledger", url, "--json"])
    assert old.exit_code == new.exit_code == 0 and old.stdout == new.stdout
    market = tmp_path / "m.json"
    assert runner.invoke(app, ["generate", "double-auction", "-o", str(market)]).exit_code == 0
    old = runner.invoke(app, ["clear", str(market), "-m", "double", "-o", "tie_break=index",
                              "--json"])  # fmt: skip
    new = runner.invoke(app, ["clear", str(market), "-m", "double-auction", "-O",
                              "tie_break=index", "--json"])  # fmt: skip
    assert old.exit_code == new.exit_code == 0 and old.stdout == new.stdout
    assert "note: -o is deprecated; use -O" in old.stderr
    assert "note: mechanism 'double' is deprecated; use double-auction" in old.stderr
    assert new.stderr == ""


def test_old_mechanism_names_reach_the_auctioneer_as_its_new_ones(capsys):
    assert parse("auctioneer trials", ["-m", "double-coin", "-m", "vcg"])["mechanism"] == [
        "double-auction-coin",
        "vcg",
    ]
    assert parse("auctioneer local", ["--mechanism", "double"])["mechanism"] == "double-auction"
    assert parse("clear", ["m.json", "-m", "double"])["mechanism"] == "double-auction"
    assert capsys.readouterr().err.count("note: mechanism") == 3
