"""Tables for people: numbers are never cut, on a terminal or off it (`mercat.cli._output`)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from mercat.cli import _output

ROWS = [
    {
        "round": 1,
        "requests with a long header": 12,
        "welfare": 25.756812,
        "charged": 18.13721,
        "margin": -0.024387,
        "note": "a few words of text",
    },
    {
        "round": 20,
        "requests with a long header": 1234,
        "welfare": 1.5e-07,
        "charged": 0.0,
        "margin": 123456.7,
        "note": "",
    },
]
NUMBERS = ["25.7568", "18.1372", "-0.024387", "1.5e-07", "123457", "1234"]


def printed(monkeypatch, *, terminal: bool, width: int, table=_output.print_table) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width, color_system=None)
    monkeypatch.setattr(_output, "console", console)
    table("the title", ROWS) if table is _output.print_table else table("the title", ROWS[0])
    return out.getvalue()


def test_off_a_terminal_a_wide_table_prints_at_its_own_width(monkeypatch):
    text = printed(monkeypatch, terminal=False, width=80)
    assert "…" not in text
    assert "requests with a long header" in text and "a few words of text" in text
    for number in NUMBERS:
        assert number in text
    assert max(len(line) for line in text.splitlines()) > 80


@pytest.mark.parametrize("width", [40, 66, 72])
def test_on_a_narrow_terminal_numbers_stay_whole(monkeypatch, width):
    text = printed(monkeypatch, terminal=True, width=width)
    for number in NUMBERS:
        assert number in text, (number, text)


def test_on_a_terminal_the_table_fits_where_its_numbers_can(monkeypatch):
    text = printed(monkeypatch, terminal=True, width=72)
    assert max(len(line) for line in text.splitlines()) <= 72
    assert "…" not in text  # headers and text wrap instead


def test_a_mapping_keeps_its_values_whole(monkeypatch):
    text = printed(monkeypatch, terminal=True, width=20, table=_output.print_mapping)
    for number in ["25.7568", "18.1372", "-0.024387"]:
        assert number in text


def test_none_is_a_dash_and_leaves_a_column_numeric(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(_output, "console", Console(file=out, width=60, color_system=None))
    _output.print_table(
        "ruin", [{"method": "exact", "low": 0.25}, {"method": "diffusion", "low": None}]
    )
    text = out.getvalue()
    assert "None" not in text
    (exact,) = [line for line in text.splitlines() if "exact" in line]
    (diffusion,) = [line for line in text.splitlines() if "diffusion" in line]
    assert (
        exact.index("0.25") + len("0.25") == diffusion.index(_output.NOTHING) + 1
    )  # right-aligned


# --- standard output and error that cannot be written --------------------------------------

MERCAT = [sys.executable, "-m", "mercat.cli"]
CALIBRATE = [*MERCAT, "calibrate", "--target", "0.01", "--assets", "4"]


def _one_error_line(stderr: str, message: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [f"error: {message}"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_full_disk_under_stdout_is_one_error_line(json_flag):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*CALIBRATE, *json_flag], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert done.returncode == 2
    _one_error_line(done.stderr, "cannot write the output: No space left on device")


def test_a_closed_stdout_is_one_error_line_for_a_command_that_prints():
    done = subprocess.run(
        CALIBRATE, preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE, text=True, timeout=60
    )
    assert done.returncode == 2
    _one_error_line(done.stderr, "cannot write the output: standard output is closed")


def test_a_closed_stderr_lets_the_command_run(tmp_path):
    # `mercat market run` reports its progress on stderr: with stderr closed its first
    # progress line used to end the command (exit code 1) before any round ran.
    ledger = f"sqlite:///{tmp_path / 'market.db'}"
    done = subprocess.run(
        [*MERCAT, "market", "run", "--ledger", ledger, "--rounds", "1"],
        preexec_fn=lambda: os.close(2),
        stdout=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert "audit: ok" in done.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly():
    command = subprocess.Popen(
        [*MERCAT, "generate", "random", "-n", "3000", "--nodes", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert command.stdout.read(10)
    command.stdout.close()  # `| head -c 10`
    stderr = command.stderr.read().decode()
    assert command.wait(timeout=60) == 0
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
