"""The sandbox's fast path: a zygote process that has imported numpy and the workloads
once, and forks a fresh child for each run (`python -I -m mercat.workloads.zygote`).

Starting a Python interpreter and importing numpy costs most of a small run (0.2-1 s on two
busy cores, against milliseconds of arithmetic); a provider agent runs a task a second, an
oracle re-executes some. So each sandbox thread keeps one zygote, started like the one-shot
child (`mercat.workloads.child`: `-I`, the pinned environment, its own session), which
serves runs one at a time over its standard input and output, one JSON line each way:

    → {"workdir": "/tmp/mercat-task-…", "seconds": 60}
    ← {"status": 0, "timed_out": false}        status: the child's exit code, or -signal

For each run the zygote forks; the child starts its own session, asks to die with the
zygote, sets its resource limits and runs `child.run_job` on the work directory, exactly as
the one-shot child does after its imports; then `os._exit`. The zygote waits for it at most
`seconds` of wall time and kills its process group at the limit. The zygote itself exits
when its standard input closes (its sandbox was closed, or the process that owns it died)
and dies with that process (PR_SET_PDEATHSIG).

The one-shot child is the readable reference; tests/workloads holds the two to the same
output bytes and the same refusals.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time

POLL_SECONDS = 0.002


def serve(stdin: object = None, stdout: object = None) -> int:
    from mercat.workloads import child

    child.die_with_parent()
    # Everything a run needs, imported once here and inherited by every fork.
    import mercat.workloads.catalog
    import mercat.workloads.federated  # noqa: F401

    reader = stdin or sys.stdin
    writer = stdout or sys.stdout
    writer.write("READY\n")  # type: ignore[attr-defined]
    writer.flush()  # type: ignore[attr-defined]
    for line in reader:  # type: ignore[attr-defined]
        job = json.loads(line)
        status, timed_out = run_one(str(job["workdir"]), float(job["seconds"]))
        writer.write(json.dumps({"status": status, "timed_out": timed_out}) + "\n")  # type: ignore[attr-defined]
        writer.flush()  # type: ignore[attr-defined]
    return 0


def run_one(workdir: str, seconds: float) -> tuple[int, bool]:
    """Fork a child for one run and wait for it (module docstring)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.setsid()
            # Its own files: the zygote's standard output is the protocol's pipe.
            null = os.open(os.devnull, os.O_RDWR)
            err = os.open(os.path.join(workdir, "stderr.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            os.chdir(workdir)
            os.environ["HOME"] = os.environ["TMPDIR"] = workdir
            from mercat.workloads import child

            child.die_with_parent()
            code = child.run_job(workdir)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    if _exited_within(pid, seconds):
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), False
    for kill in (os.killpg, os.kill):  # its group, or itself if it has no session yet
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)  # still unreaped: the id is still its own
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), True


def _exited_within(pid: int, seconds: float) -> bool:
    """Whether the child exits within `seconds` (it is left unreaped)."""
    deadline = time.monotonic() + seconds
    try:
        descriptor = os.pidfd_open(pid)  # Linux 5.3: readable once the process exits
    except (AttributeError, OSError):
        descriptor = None
    if descriptor is not None:
        try:
            ready, _, _ = select.select([descriptor], [], [], max(0.0, seconds))
            return bool(ready)
        finally:
            os.close(descriptor)
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(POLL_SECONDS)
    return False


if __name__ == "__main__":
    sys.exit(serve())
