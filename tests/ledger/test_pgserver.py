"""The disposable PostgreSQL server of the test suite stops with the run that started it,
however that run ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mercat.ledger.pgserver import (
    TemporaryPostgres,
    find_bindir,
    make_root,
    sweep_stale,
)
from mercat.lifetime import pid_alive
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


def _root(directory, name, postmaster=None):
    root = directory / name
    (root / "data").mkdir(parents=True)
    if postmaster is not None:
        (root / "data" / "postmaster.pid").write_text(f"{postmaster}\n/some/data\n")
    return root


def test_the_directories_of_ended_runs_are_swept_and_nothing_else(tmp_path):
    """What a SIGKILLed run leaves: its directory, named after its pid, and perhaps a
    postmaster.pid naming a server that has ended too."""
    running = {100, 200}
    dead = _root(tmp_path, "mercat-pg-300-abc")
    dead_server = _root(tmp_path, "mercat-pg-301-abc", postmaster=302)
    kept = [
        _root(tmp_path, "mercat-pg-100-abc"),  # its run still runs
        _root(tmp_path, "mercat-pg-303-abc", postmaster=200),  # its server still runs
        _root(tmp_path, "mercat-pg-x8k2a_9q"),  # no pid in the name: not known to be stale
        _root(tmp_path, "mercat-pg-304"),
        _root(tmp_path, "other-305-abc"),
    ]
    (tmp_path / "mercat-pg-306-file").write_text("not a directory")
    (tmp_path / "mercat-pg-307-link").symlink_to(kept[0], target_is_directory=True)
    removed = sweep_stale(tmp_path, alive=running.__contains__)
    assert sorted(removed) == [dead, dead_server]
    assert not dead.exists() and not dead_server.exists()
    assert all(root.is_dir() for root in kept)
    assert (tmp_path / "mercat-pg-306-file").is_file()
    assert (tmp_path / "mercat-pg-307-link").is_symlink() and kept[0].exists()


def test_a_new_directory_is_named_after_its_process_and_sweeps_first(tmp_path):
    stale = _root(tmp_path, "mercat-pg-300-abc")
    root = make_root(tmp_path, alive=lambda pid: pid == os.getpid())
    assert root.parent == tmp_path and root.name.startswith(f"mercat-pg-{os.getpid()}-")
    assert not stale.exists()
    # the directory just made is this process's: a sweep by another run leaves it
    assert sweep_stale(tmp_path) == [] and root.is_dir()


def test_pid_alive():
    assert pid_alive(os.getpid())
    pid_max = Path("/proc/sys/kernel/pid_max")
    if pid_max.exists():  # no process can have a pid above the system's maximum
        assert not pid_alive(int(pid_max.read_text()) + 1)
