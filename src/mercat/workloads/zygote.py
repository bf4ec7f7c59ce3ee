"""The sandbox's fast path: a zygote process that has imported numpy and the workloads
once, and forks a fresh child for each run (`python -I -m mercat.workloads.zygote`).

Starting a Python interpreter and importing numpy costs most of a small run (0.2-1 s on two
busy cores, against milliseconds of arithmetic); a provider agent runs a task a second, an
oracle re-executes some. So a sandbox keeps one zygote, started like the one-shot child
(`mercat.workloads.child`: `-I`, the pinned environment, its own session), which serves
runs over its standard input and output, one JSON line each way, several at once:

    → {"id": 7, "workdir": "/tmp/mercat-task-…", "seconds": 60}
    ← {"id": 7, "status": 0, "timed_out": false}     status: exit code, or -signal

For each run the zygote forks; the child starts its own session, points its standard
streams at /dev/null and the run's `stderr.txt` (the zygote's output is the protocol's
pipe), asks to die with the zygote, sets its resource limits and runs `child.run_job` on
the work directory, exactly as the one-shot child does after its imports; then `os._exit`.
The zygote watches every child (a pidfd each, Linux 5.3+; polling otherwise) and kills a
child's process group at its wall-clock limit. The zygote exits when its standard input
closes (its sandbox was closed, or its owner died) and dies with its owner
(PR_SET_PDEATHSIG); its children die with it.

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

from mercat.lifetime import die_with_parent, parent_from_environment

POLL_SECONDS = 0.01  # without pidfds: how often exits are looked for
MAX_LINE = 64 << 10


def serve() -> int:
    die_with_parent(signal.SIGKILL, parent_from_environment())
    # Everything a run needs, imported once here and inherited by every fork.
    import mercat.workloads.catalog
    import mercat.workloads.federated  # noqa: F401

    _write({"ready": True})
    running: dict[int, tuple[int, int, float, int | None]] = {}  # pid -> (id, pid, deadline, fd)
    buffer = b""
    open_input = True
    while open_input or running:
        watched = [fd for _, _, _, fd in running.values() if fd is not None]
        waits = [deadline - time.monotonic() for _, _, deadline, _ in running.values()]
        timeout = max(0.0, min(waits)) if waits else None
        if any(fd is None for *_, fd in running.values()):
            timeout = POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS)
        readable, _, _ = select.select(([0] if open_input else []) + watched, [], [], timeout)
        if 0 in readable:
            chunk = os.read(0, MAX_LINE)
            if not chunk:  # the owner closed us: finish nothing new, kill what runs
                open_input = False
                for pid in list(running):
                    _kill(pid)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                job = json.loads(line)
                pid = _fork(str(job["workdir"]))
                running[pid] = (int(job["id"]), pid, time.monotonic() + float(job["seconds"]),
                                _pidfd(pid))  # fmt: skip
        for pid, (job_id, _, deadline, fd) in list(running.items()):
            timed_out = time.monotonic() >= deadline
            if timed_out:
                _kill(pid)
            elif os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                continue
            _, status = os.waitpid(pid, 0)
            if fd is not None:
                os.close(fd)
            del running[pid]
            if open_input:
                _write({"id": job_id, "status": os.waitstatus_to_exitcode(status),
                        "timed_out": timed_out})  # fmt: skip
    return 0


def _write(message: dict[str, object]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # readable once the process exits
    except (AttributeError, OSError):
        return None


def _kill(pid: int) -> None:
    """SIGKILL a child's group, or the child if it has no session yet (it is unreaped, so
    its id is still its own)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _fork(workdir: str) -> int:
    zygote = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 70  # the child: never returns
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(os.path.join(workdir, "stderr.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.chdir(workdir)
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        from mercat.workloads import child

        die_with_parent(signal.SIGKILL, zygote)
        code = child.run_job(workdir)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(serve())
