"""Children that end with their parent (`mercat.lifetime`): a child whose parent is already
another process when it asks exits at once instead of running on, adopted."""

import os
import subprocess
import sys

import pytest

from mercat.lifetime import PARENT_ENV, dying_with_parent, parent_from_environment, with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

ASK = "from mercat.lifetime import die_with_parent; die_with_parent(15, {parent}); print('ran')"


def ask(parent: str) -> subprocess.CompletedProcess:
    code = ASK.format(parent=parent)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_child_whose_parent_is_gone_by_the_time_it_asks_exits_at_once():
    # Named parent 1: this child's parent is the test process, so to the child its parent
    # is already "another one", as when the real parent died and it was adopted.
    gone = ask("1")
    assert (gone.returncode, gone.stdout) == (1, "")
    # Its real parent (this process): it runs on.
    alive = ask(str(os.getpid()))
    assert (alive.returncode, alive.stdout) == (0, "ran\n")
    # No parent named: the request alone, as before.
    assert ask("None").stdout == "ran\n"


def test_a_popen_preexec_fn_checks_the_process_that_made_it():
    check = dying_with_parent()
    assert check.args[1] == os.getpid()
    ran = subprocess.run(["true"], preexec_fn=check, timeout=60)
    assert ran.returncode == 0


def test_a_parent_pid_passes_through_the_environment(monkeypatch):
    environment = with_parent({"PATH": "/bin"})
    assert environment == {"PATH": "/bin", PARENT_ENV: str(os.getpid())}
    for value, expected in (("123", 123), ("", None), ("0", None), ("-5", None), ("١٢", None)):
        monkeypatch.setenv(PARENT_ENV, value)
        assert parent_from_environment() == expected
    monkeypatch.delenv(PARENT_ENV)
    assert parent_from_environment() is None
