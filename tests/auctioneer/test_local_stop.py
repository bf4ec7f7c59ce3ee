"""`mercat auctioneer local` stopped by Ctrl-C (SIGINT to its process group, as a terminal
sends it) or by SIGTERM (to it alone, as `kill` sends it): it stops its provider processes,
leaves no key and no temporary directory behind, prints the rounds it finished, and exits
as a process stopped by that signal does, without a traceback."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.processes import alive

ROUND_DONE = "round 1: ok"  # two rounds finished: the table will have rows


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_local_stops_cleanly_on_a_signal(tmp_path, how):
    environment = {**os.environ, "TMPDIR": str(tmp_path)}  # its temporary directory: here
    command = [
        sys.executable, "-m", "mercat.cli", "auctioneer", "local", "--providers", "3", "--k", "1",
        "--users", "30", "--rounds", "100000", "--phase-timeout", "2",
    ]  # fmt: skip
    out_path = tmp_path / "stdout.txt"
    # stderr is read by one thread only (the reader below): communicate() would race it for
    # the last lines
    out_file = out_path.open("w")
    process = subprocess.Popen(
        command,
        stdout=out_file,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,  # its own process group, as a job in a terminal
        # A test runner may ignore SIGINT; a terminal's job does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    ready = threading.Event()

    def read_stderr() -> None:  # readiness comes from its output, not from a sleep
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if ROUND_DONE in line:
                ready.set()
        ready.set()  # it ended: the assertions below say how

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "no round finished"
        assert process.poll() is None, "".join(lines)
        providers = children(process.pid)
        assert len(providers) == 3
        [workdir] = tmp_path.glob("mercat-auctioneer-*")
        assert (workdir / "peers.toml").exists()
        assert not list(workdir.glob("*.key")), "a provider key was written to disk"
        if how == "SIGINT":
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole group
        else:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out_file.close()
    reader.join(60)  # the pipe's end: every line it wrote has been read
    assert not reader.is_alive(), "its stderr stayed open after it exited"
    stdout = out_path.read_text()
    stderr = "".join(lines)
    number = getattr(signal, how)
    assert process.returncode == 128 + number, stderr
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr
    assert f"stopped by {how} after" in stderr
    assert "rounds delivered" in stdout and "│ ok" in stdout  # the table of finished rounds
    assert not [p for p in providers if alive(p)], "a provider outlived the command"
    assert not list(tmp_path.glob("mercat-auctioneer-*")), "its temporary directory is left"
