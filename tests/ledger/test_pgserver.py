"""The disposable PostgreSQL server of the test suite stops with the run that started it,
however that run ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mercat.ledger.pgserver import TemporaryPostgres, find_bindir


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie: it has ended
    except FileNotFoundError:
        return True


def _postmaster(datadir) -> int:
    return int((datadir / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def bindir():
    found = find_bindir()
    if found is None:
        pytest.skip("PostgreSQL is not installed here")
    return found


def test_a_server_is_stopped_and_removed(bindir):
    server = TemporaryPostgres().start()
    pid, root = _postmaster(server.datadir), server.root
    server.create_database("x")
    server.stop()
    assert _gone(pid) and not root.exists()


def test_a_server_whose_start_fails_leaves_nothing(bindir, monkeypatch):
    server = TemporaryPostgres()
    root = server.root

    def refuse(timeout):
        raise KeyboardInterrupt  # Ctrl-C while waiting for the server

    monkeypatch.setattr(server, "_wait_ready", refuse)
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert server.process is None and not root.exists()


def test_a_server_ends_with_the_process_that_started_it(bindir, tmp_path):
    """A run stopped by SIGTERM runs no clean-up; the server stops all the same."""
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, time\n"
            "from mercat.ledger.pgserver import TemporaryPostgres\n"
            "server = TemporaryPostgres().start()\n"
            "pid = (server.datadir / 'postmaster.pid').read_text().split()[0]\n"
            f"open({str(pid_file)!r} + '.tmp', 'w').write(f'{{pid}} {{server.root}}')\n"
            f"os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
            "time.sleep(600)\n"
        )],
    )  # fmt: skip
    try:
        while not pid_file.exists():
            if parent.poll() is not None:
                pytest.skip(f"no server could be started here (exit {parent.returncode})")
            time.sleep(0.05)
        pid = int(pid_file.read_text().split()[0])
        assert not _gone(pid)
        parent.send_signal(signal.SIGTERM)  # its default action: no clean-up runs
        parent.wait(timeout=60)
        deadline = time.monotonic() + 60  # a bound on the wait, not a measured time
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the server outlived the process that started it")
    finally:
        parent.kill()
        parent.wait()
        if pid_file.exists():  # what the stopped run could not remove
            shutil.rmtree(pid_file.read_text().split(maxsplit=1)[1], ignore_errors=True)
