"""`mercat ledger ...` end to end on a SQLite store."""

from __future__ import annotations

import json

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
    code, out = _run("init", "--url", url, "--operator-key", str(key_file),
                     "--mechanism", "coll-sr", "--penalty", "1", "--target", "0.01",
                     "--initial-stake", "10", "--json")  # fmt: skip
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

    code, out = _run("accounts", "--url", url, "--json")
    assert code == 0 and {row["role"] for row in json.loads(out)} == {"operator", "user"}
    code, out = _run("balance", alice.public, "--url", url, "--json")
    assert code == 0 and json.loads(out) == {"available": 42, "unbonding": 0}
    code, out = _run("journal", "--url", url, "--json")
    assert code == 0 and [e["op"] for e in json.loads(out)] == ["open_account", "deposit"]
    code, out = _run("verify", "--url", url, "--json")
    assert code == 0 and json.loads(out)["supply"] == 42

    with Ledger(url) as ledger, ledger.engine.begin() as c:
        c.execute(text("UPDATE books SET balance = 43 WHERE balance = 42"))
    code, out = _run("verify", "--url", url)
    assert code == 2 and "postings sum to 42" in out


def test_errors_are_one_line_and_exit_2(tmp_path):
    code, out = _run("accounts", "--url", f"sqlite:///{tmp_path}/none.db")
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
        (f"sqlite:///{not_a_db}", "file is not a database"),
    ):
        code, out = _run("accounts", "--url", url)
        assert code == 2 and words in " ".join(out.split()) and "Traceback" not in out, out
        assert "secret" not in out
    url = f"sqlite:///{tmp_path}/x.db"
    assert _run("init", "--url", url, "--operator-key", str(tmp_path / "k"))[0] == 0
    code, out = _run("balance", "nobody", "--url", url)
    assert code == 2 and "nobody" in out
