"""Tables for people: numbers are never cut, on a terminal or off it (`mercat.cli._output`)."""

from __future__ import annotations

import io

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
