"""Child processes that end with their parent.

A process stopped by SIGKILL, or by a SIGTERM whose default action runs no clean-up, cannot
stop its children itself. Linux can: `PR_SET_PDEATHSIG` asks it to send a signal to a
process when the thread that started it ends. Every child mercat starts (workers, providers,
servers, nodes) asks for it first thing, through `die_with_parent`, or as Popen's
`preexec_fn` through `dying_with_parent`. Elsewhere it does nothing.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

PARENT_ENV = "MERCAT_PARENT_PID"
"""The environment variable through which a process passes its pid to a child it starts
with an interpreter of its own (`parent_from_environment`)."""


def die_with_parent(
    signum: int = signal.SIGTERM, parent: int | None = None
) -> None:  # pragma: no cover - in children
    """Ask Linux to send `signum` to this process when the thread that started it ends.

    A parent that ends before the request is made sends nothing: its child would run on,
    adopted. So with `parent` (the pid of the process that started this one), a process
    whose parent is another one by the time the request is in place exits at once (status
    1), as the signal would have ended it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):  # no prctl: the caller's other ways must do
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def dying_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen `preexec_fn` that runs `die_with_parent(signum)` in the child, the process
    that makes this function being the parent it checks."""
    return functools.partial(die_with_parent, signum, os.getpid())


def with_parent(environment: dict[str, str]) -> dict[str, str]:
    """`environment` for a child, naming this process as its parent (`PARENT_ENV`)."""
    return {**environment, PARENT_ENV: str(os.getpid())}


def parent_from_environment() -> int | None:
    """The parent pid a child was given (`with_parent`), or None if none or not a pid."""
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` may exist: one of another user counts, so does a zombie, and
    so does a number too large to ask about (every doubt says alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def sweep_left_behind(
    directory: str | os.PathLike[str],
    name: re.Pattern[str],
    keep: Callable[[Path], bool] = lambda path: False,
    alive: Callable[[int], bool] = pid_alive,
) -> list[Path]:
    """Remove what processes killed outright (SIGKILL, the OOM killer: no clean-up runs)
    left in `directory`: the directories of this user whose name `name` matches in full,
    its group 1 the pid of the process that made them, when that process is not `alive`
    and `keep(path)` does not keep them; the paths removed. This process's own, other
    users', links, files and anything that cannot be examined are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = name.fullmatch(entry.name)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid():
            continue
        path = Path(entry.path)
        if alive(int(match[1])) or keep(path):
            continue
        shutil.rmtree(path, ignore_errors=True)  # another process may be sweeping it too
        removed.append(path)
    return removed
