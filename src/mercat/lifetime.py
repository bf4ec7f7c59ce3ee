"""Child processes that end with their parent.

A process stopped by SIGKILL, or by a SIGTERM whose default action runs no clean-up, cannot
stop its children itself. Linux can: `PR_SET_PDEATHSIG` asks it to send a signal to a
process when the thread that started it ends. Every child mercat starts (workers, providers,
servers, nodes) asks for it first thing, through `die_with_parent`, or as Popen's
`preexec_fn` through `dying_with_parent`. Elsewhere it does nothing.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM) -> None:  # pragma: no cover - in children
    """Ask Linux to send `signum` to this process when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):  # no prctl: the caller's other ways must do
        pass


def dying_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen `preexec_fn` that runs `die_with_parent(signum)` in the child."""
    return functools.partial(die_with_parent, signum)
