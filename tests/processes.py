"""Processes seen through Linux's /proc, for the tests that check that children end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ENDING_BOUND = 60.0
"""How long a process may take to end before a test calls it a survivor: a bound on the
wait, never a measured time."""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended; only its parent has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for_file(path: Path, parent: subprocess.Popen | None = None) -> bool:
    """Wait (at most ENDING_BOUND) until `path` exists: True, or False if `parent` ended
    first or the bound passed."""
    deadline = time.monotonic() + ENDING_BOUND
    while not path.exists():
        if (parent is not None and parent.poll() is not None) or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ends_with_sigtermed_parent(parent: subprocess.Popen, pid: int) -> bool:
    """SIGTERM `parent` (its default action: no clean-up code runs) and wait until `pid`
    ends; False, after SIGKILLing it, if it outlives the bound."""
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=ENDING_BOUND)
    deadline = time.monotonic() + ENDING_BOUND
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True
