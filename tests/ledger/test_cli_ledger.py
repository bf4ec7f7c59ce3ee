"""`mercat ledger ...` end to end on a SQLite store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from mercat.cli import app
from mercat.identity import Keypair
from mercat.ledger import Deposit, Ledger, OpenAccount, Signer

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["ledger", *args])
    return result.exit_code, result.output


def test_init_fund_inspect_verify_and_catch_tampering(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    key_file = tmp_path / "operator.key"
    code, out = _run("init", "--ledger", url, "--operator-key", str(key_file),
                     "--collective", "coll-sr", "--penalty", "1", "--target", "0.01",
                     "--stake", "10", "--json")  # fmt: skip
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["penalty"], summary["reward"]) == (1_000_000, 10_101)
    assert (summary["stake_floor"], summary["stake_cap"]) == (10_000, 10_000_000)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    operator = Keypair.from_hex(key_file.read_text())
    alice = Keypair.generate()
    with Ledger(url) as ledger:
        ledger.submit(Signer(alice, ledger.id).sign(OpenAccount()))
        ledger.submit(Signer(operator, ledger.id).sign(Deposit(account=alice.public, amount=42)))

    code, out = _run("accounts", "--ledger", url, "--json")
    assert code == 0 and {row["role"] for row in json.loads(out)} == {"operator", "user"}
    code, out = _run("balance", alice.public, "--ledger", url, "--json")
    assert code == 0 and json.loads(out) == {"available": 42, "unbonding": 0}
    code, out = _run("journal", "--ledger", url, "--json")
    assert code == 0 and [e["op"] for e in json.loads(out)] == ["open_account", "deposit"]
    code, out = _run("verify", "--ledger", url, "--json")
    assert code == 0 and json.loads(out)["supply"] == 42

    with Ledger(url) as ledger, ledger.engine.begin() as c:
        c.execute(text("UPDATE books SET balance = 43 WHERE balance = 42"))
    code, out = _run("verify", "--ledger", url)
    assert code == 2 and "postings sum to 42" in out


def test_errors_are_one_line_and_exit_2(tmp_path):
    code, out = _run("accounts", "--ledger", f"sqlite:///{tmp_path}/none.db")
    assert code == 2 and "mercat ledger init" in out and "Traceback" not in out
    assert not (tmp_path / "none.db").exists()  # a mistyped path leaves no empty store behind
    # A URL that is not one, a dialect that is not installed, a server that is not there, a
    # file that is no database: one line each, the password hidden.
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database, just notes\n" * 200)
    for url, words in (
        ("notaurl", "not a usable database URL: 'notaurl'"),
        ("foo://x", "not a usable database URL: 'foo://x'"),
        ("postgresql+psycopg://me:secret@127.0.0.1:1/db", "cannot open the ledger store"),
        # SQLAlchemy cannot parse these: the message shows them, never the password
        ("postgres ql://me:secret@host/db", "not a usable database URL: 'postgres ql://me:***@"),
        ("postgresql+psycopg://me:secret@host:port/db", "not a usable database URL"),
        (f"sqlite:///{not_a_db}", "file is not a database"),
    ):
        code, out = _run("accounts", "--ledger", url)
        assert code == 2 and words in " ".join(out.split()) and "Traceback" not in out, out
        assert "secret" not in out
    url = f"sqlite:///{tmp_path}/x.db"
    assert _run("init", "--ledger", url, "--operator-key", str(tmp_path / "k"))[0] == 0
    code, out = _run("balance", "nobody", "--ledger", url)
    assert code == 2 and "nobody" in out


# --- bad input: one line, exit 2, nothing written --------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content (what a refused command must not change)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(args: list[str], folder: Path) -> str:
    """Run `mercat ...`; assert exit 2, one line `error: ...`, no traceback, nothing written
    in `folder`. Returns the line."""
    before = _files(folder)
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert _files(folder) == before, f"{args} changed {folder}"
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder, current for the test (the default key file lands here)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MERCAT_LEDGER_URL", raising=False)
    foreign = sqlite3.connect(tmp_path / "foreign.db")
    foreign.execute("CREATE TABLE notes (text TEXT)")
    foreign.commit()
    foreign.close()
    (tmp_path / "empty.db").touch()
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    return tmp_path


def _init(*args: str) -> list[str]:
    return ["ledger", "init", "--operator-key", "op.key", *args]


INIT_REFUSALS = [
    (["--ledger", "sqlite:///missing/x.db"], "no folder 'missing'"),
    (
        ["--ledger", "mysql://me:secret@host/db"],
        "not a usable database URL: 'mysql://me:***@host/db'",
    ),
    (["--ledger", "postgresql://host/db"], "PostgreSQL through psycopg"),
    (["--ledger", ""], "--ledger is empty"),
    (["--ledger", "   "], "--ledger is empty"),
    (["--ledger", "sqlite:///foreign.db"], "holds tables that are not a ledger's (notes)"),
    (["--ledger", "sqlite:///notes.txt"], "file is not a database"),
    (["--penalty", "1e30"], "--penalty 1e+30 tokens is 1e+36 base units"),
    (["--penalty", "nan"], "--penalty must be a finite number"),
    (["--penalty", "-1"], "--penalty must be a finite number of tokens > 0"),
    (["--stake", "1e300"], "--stake 1e+300 tokens"),
    (["--stake", "inf"], "--stake must be a finite number"),
    (["--target", "2"], "task_target must lie in the open interval (0, 1)"),
    (["--unit", "0"], "--unit must be in [1, 1000000000000000000]"),
    (["--unit", "10000000000000000000"], "--unit must be in"),
    (["--unstake-delay", "1e30"], "Invalid value for '--unstake-delay'"),
    (["--unstake-delay", "10000000000000"], "--unstake-delay must be in [0, 1000000000]"),
    (["--quorum", "0"], "--quorum must be in [1, 1000]"),
    (["--collective", "nope"], "nope"),
    (["--bogus"], "No such option: --bogus"),
]


@pytest.mark.parametrize(
    ("args", "words"), INIT_REFUSALS, ids=[" ".join(a) for a, _ in INIT_REFUSALS]
)
def test_a_refused_init_writes_nothing_not_even_the_key(workdir, args, words):
    if "--ledger" not in args:
        args = ["--ledger", "sqlite:///new.db", *args]
    line = _refused(_init(*args), workdir)
    assert words in line, line
    assert not (workdir / "op.key").exists() and not (workdir / "new.db").exists()


def test_a_key_file_in_a_missing_folder_is_refused(workdir):
    line = _refused(["ledger", "init", "--ledger", "sqlite:///new.db", "--operator-key",
                     "nowhere/op.key"], workdir)  # fmt: skip
    assert "no folder nowhere" in line


def test_an_init_that_fails_at_the_store_removes_the_key_it_wrote(workdir):
    # The key is written before the ledger names it; a server that is not there fails after.
    line = _refused(_init("--ledger", "postgresql+psycopg://me:secret@127.0.0.1:1/db"), workdir)
    assert "cannot open the ledger store" in line and "secret" not in line
    assert not (workdir / "op.key").exists()


def test_init_on_an_existing_ledger_keeps_it_and_writes_no_key(workdir):
    assert runner.invoke(app, _init("--ledger", "sqlite:///l.db")).exit_code == 0
    (workdir / "op.key").rename(workdir / "first.key")
    line = _refused(_init("--ledger", "sqlite:///l.db"), workdir)
    assert "already initialised" in line


@pytest.mark.parametrize("command", ["verify", "accounts", "journal"])
@pytest.mark.parametrize("store", ["empty.db", "foreign.db", "notes.txt", "absent.db"])
def test_reading_a_store_that_is_not_a_ledger_leaves_it_as_it_was(workdir, command, store):
    line = _refused(["ledger", command, "--ledger", f"sqlite:///{store}"], workdir)
    assert "no ledger at" in line or "file is not a database" in line
    assert not (workdir / "absent.db").exists()
    assert not list(workdir.glob("*-wal")) and (workdir / "empty.db").stat().st_size == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["journal", "--limit", "1e30"], "Invalid value for '--limit'"),
        (["journal", "--limit", "1000000000000000000000000000000"], "--limit must be in"),
        (["journal", "--limit", "0"], "--limit must be in [1, 100000]"),
        (["journal", "--after", "-1"], "--after must be in"),
        (["accounts", "--ledger", "mysql://u@h/db"], "not a usable database URL"),
        (["accounts", "--ledger", ""], "--ledger is empty"),
        (["balance"], "Missing argument"),
        (["verify", "--json", "--nope"], "No such option: --nope"),
    ],
)
def test_bad_reading_options_are_one_line(workdir, args, words):
    assert runner.invoke(app, _init("--ledger", "sqlite:///l.db")).exit_code == 0
    if "--ledger" not in args:
        args = [*args, "--ledger", "sqlite:///l.db"]
    assert words in _refused(["ledger", *args], workdir)


def test_a_tampered_store_is_one_line_for_every_reading_command(workdir):
    assert runner.invoke(app, _init("--ledger", "sqlite:///l.db")).exit_code == 0
    operator = Keypair.from_file(workdir / "op.key")
    with Ledger("sqlite:///l.db") as ledger:
        ledger.submit(Signer(operator, ledger.id).sign(Deposit(account=operator.public, amount=7)))
    with sqlite3.connect(workdir / "l.db") as c:  # behind the ledger's back
        c.execute("DROP TRIGGER postings_no_update")
        c.execute("UPDATE books SET balance = 1.5 WHERE name LIKE 'avail:%'")
        c.execute("UPDATE postings SET amount = 'seven' WHERE amount = 7")
    c.close()
    for command, words in (("accounts", "holds 1.5"), ("journal", "holds 'seven'"),
                           ("verify", "holds 1.5"), ("balance", "holds 1.5")):  # fmt: skip
        extra = [operator.public] if command == "balance" else []
        line = _refused(["ledger", command, *extra, "--ledger", "sqlite:///l.db"], workdir)
        assert words in line, line


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command under `command` (a group has `commands`)."""
    if hasattr(command, "commands"):
        return [c for name, sub in command.commands.items() for c in _commands(sub, (*path, name))]
    return [path]


def test_every_command_answers_a_bad_option_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = _commands(typer.main.get_command(app))
    assert ("ledger", "init") in commands and len(commands) > 20
    for path in commands:
        line = _refused([*path, "--no-such-option"], tmp_path)
        assert "No such option: --no-such-option" in line and " ".join(path) in line, line
    assert "No such option" in _refused(["--no-such-option"], tmp_path)
