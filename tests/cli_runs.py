"""Running `mercat` in the test's process and checking its refusals, for the tests of what
users hand mercat (`tests/cli/test_users_input.py`, `tests/workbench/test_scenario_input.py`)."""

from __future__ import annotations

from typer.testing import CliRunner

from mercat.cli import app

runner = CliRunner()


def run(*args):
    """`mercat ARGS...` (each argument as text), its result."""
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(out, *words):
    """`out` is a refusal: exit code 2, one line `error: ...` on stderr holding every word,
    no traceback."""
    assert out.exit_code == 2, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in lines[0], lines[0]
