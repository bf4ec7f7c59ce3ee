"""Output helpers shared by the command modules: JSON for scripts, rich tables for people.

Tables and mappings print their titles, headers and cells as plain text: ids and names come
from users' files, and rich would read `[/x]` in an id as markup (and fail on it).

A number is never cut: rich fits a table to the console by shortening cells to "28.0…",
which on a terminal narrower than the table turned welfare and margins into their first
digits. Numeric columns keep their width (text columns and headers wrap instead), and
where stdout is not a terminal (a pipe, a file, CI's log) there is no width to fit: rich
would assume 80 columns, so the table is printed at its own width."""

from __future__ import annotations

import contextlib
import errno
import json
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mercat.errors import OutputUnwritableError
from mercat.jsonable import jsonable


class GuardedStdout:
    """sys.stdout as the commands see it (`guard_streams`): a write or flush that fails
    becomes `OutputUnwritableError`, one line `error: ...` like any other, not a traceback from
    deep in rich or print. A closed pipe (`mercat ... | head -1`) is not an error: the reader
    had what it wanted, and the command ends quietly. Started with stdout closed (`>&-`),
    a command that prints nothing runs; one that prints fails at its first write, as a
    shell's echo does."""

    def __init__(self, stream: Any, *, closed: bool = False) -> None:
        self._stream = stream
        self._closed = closed

    def write(self, text: str) -> int:
        if self._closed:
            raise OutputUnwritableError("cannot write the output: standard output is closed")
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _failed(self, exc: OSError) -> BaseException:
        # What the stream still buffers would fail again when Python flushes it at exit
        # ("Exception ignored ..."): from here on stdout is /dev/null.
        with contextlib.suppress(OSError, ValueError):
            _onto_devnull(self._stream.fileno())
        if exc.errno == errno.EPIPE:
            return SystemExit(0)
        return OutputUnwritableError(f"cannot write the output: {exc.strerror or exc}")


def _onto_devnull(fd: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


def _is_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def guard_streams() -> None:
    """At the entry point, once. What the commands print goes through `GuardedStdout`. A
    closed standard error (`2>&-`) is reopened on /dev/null, for the command and the
    processes it starts: the command runs, its messages and progress discarded (before,
    rich's first progress line failed and the command ended with exit code 1, having done
    nothing). Python leaves sys.stderr or sys.stdout None when it starts with that file
    descriptor closed."""
    stderr_closed = _is_closed(2)
    if stderr_closed:
        _onto_devnull(2)
    if stderr_closed or sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    if isinstance(sys.stdout, GuardedStdout):
        return
    stdout_closed = _is_closed(1)
    if stdout_closed:
        _onto_devnull(1)
    if stdout_closed or sys.stdout is None:
        sys.stdout = GuardedStdout(open(1, "w", closefd=False, encoding="utf-8"), closed=True)  # noqa: SIM115
    else:
        sys.stdout = GuardedStdout(sys.stdout)


console = Console()
# Off a terminal a line of text is not wrapped either: a log or a file has no width.
console.soft_wrap = not console.is_terminal
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (nothing else goes to stdout in --json mode)."""
    print(json.dumps(jsonable(data), indent=2, sort_keys=False))


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


NOTHING = "—"
"""How a table shows None (a quantity the command did not compute), rather than "None"."""


def _cell(value: object, float_format: str) -> str:
    if value is None:
        return NOTHING
    return float_format.format(value) if isinstance(value, float) else escape(str(value))


def _print(table: Table) -> None:
    """Print a table on stdout: fitted to a terminal where its numbers fit, else at its own
    width (off a terminal always)."""
    measured = console.measure(table, options=console.options.update_width(1 << 16))
    if console.is_terminal and measured.minimum <= console.width:
        console.print(table)
        return
    Console(
        file=console.file,
        width=max(measured.maximum, console.width),
        force_terminal=console.is_terminal,
        color_system=console.color_system,
    ).print(table)


def print_table(
    title: str, rows: Sequence[Mapping[str, Any]], float_format: str = "{:.6g}"
) -> None:
    """Print a list of flat dicts as one rich table (numbers right-aligned, never cut)."""
    if not rows:
        console.print(f"{escape(title)}: (empty)")
        return
    table = Table(title=escape(title))
    columns = list(rows[0].keys())
    cells = [[_cell(row[c], float_format) for c in columns] for row in rows]
    for k, col in enumerate(columns):
        numeric = any(_is_number(row[col]) for row in rows) and all(
            _is_number(row[col]) or row[col] is None for row in rows
        )
        table.add_column(
            escape(str(col)),
            justify="right" if numeric else "left",
            min_width=max(len(line[k]) for line in cells) if numeric else None,
        )
    for line in cells:
        table.add_row(*line)
    _print(table)


def print_mapping(title: str, data: Mapping[str, Any], float_format: str = "{:.6g}") -> None:
    """Print one flat dict as a two-column table (values never cut)."""
    table = Table(title=escape(title), show_header=False)
    values = [_cell(value, float_format) for value in data.values()]
    table.add_column("quantity")
    table.add_column("value", min_width=max((len(v) for v in values), default=0))
    for key, shown in zip(data, values, strict=True):
        table.add_row(escape(str(key)), shown)
    _print(table)
