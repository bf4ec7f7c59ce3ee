"""The disposable PostgreSQL server of the test suite stops with the run that started it,
however that run ends."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from mercat.ledger.pgserver import TemporaryPostgres, find_bindir
from tests.processes import alive, ends_with_sigtermed_parent, wait_for_file


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
    assert not alive(pid) and not root.exists()


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
        if not wait_for_file(pid_file, parent):
            pytest.skip(f"no server could be started here (exit {parent.poll()})")
        pid = int(pid_file.read_text().split()[0])
        assert alive(pid)
        assert ends_with_sigtermed_parent(parent, pid), "the server outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if pid_file.exists():  # what the stopped run could not remove
            shutil.rmtree(pid_file.read_text().split(maxsplit=1)[1], ignore_errors=True)
