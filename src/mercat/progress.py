"""Progress for anything that takes longer than a second, on a terminal or off it.

Progress goes to stderr so that `--json` output on stdout stays machine-readable. Library code
takes an optional `progress` callback `(advance: int) -> None`; the command line passes one
that advances a bar, tests pass nothing.

On a terminal the bar is rich's, redrawn in place. Off a terminal (a log file, CI, a job
scheduler's output) a redrawn bar shows nothing until it ends, so progress is written as
plain lines instead: one at the start, one each time another tenth is done (or every step
of a short job), and one at the end, each with the count, the elapsed time and, once
something is done, an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]


@contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True, stream: TextIO | None = None
) -> Iterator[Advance]:
    """Yield an `advance(n)` callback driving one bar of `total` steps on stderr (or lines
    on `stream`, when that is not a terminal)."""
    if not enabled:
        yield lambda n=1: None
        return
    out = stream if stream is not None else sys.stderr
    if not _is_terminal(out):
        lines = ProgressLines(description, total, out)
        lines.start()
        yield lines.advance
        lines.finish()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(file=out) if stream is not None else Console(stderr=True)
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


class ProgressLines:
    """Progress as lines of text, one per tenth of the work (module docstring)."""

    def __init__(self, description: str, total: int, stream: TextIO) -> None:
        self.description = description
        self.total = max(0, int(total))
        self.stream = stream
        self.done = 0
        self.began = time.perf_counter()
        self.shown = -1  # the last tenth written

    def start(self) -> None:
        self._write(f"{self.description}: 0/{self.total}")

    def advance(self, n: int = 1) -> None:
        self.done += n
        tenth = 10 * self.done // self.total if self.total else 10
        if self.total <= 10 or tenth > self.shown:
            self.shown = tenth
            if self.done < self.total:
                self._write(self._status())

    def finish(self) -> None:
        self._write(self._status(final=True))

    def _status(self, final: bool = False) -> str:
        elapsed = time.perf_counter() - self.began
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"{self.description}: {self.done}/{self.total}{share}, {elapsed:.1f} s"
        if not final and 0 < self.done < self.total:
            text += f", about {elapsed / self.done * (self.total - self.done):.0f} s left"
        return text

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe: progress is not worth failing for
            pass
