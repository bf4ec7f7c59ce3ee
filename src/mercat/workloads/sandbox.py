"""Run a workload in a child process with limits on its time, memory and output.

A provider agent runs requesters' workloads on inputs that came from the network, and an
oracle re-runs them to check what a provider returned. Neither runs them in its own
process: each run is a fresh child (`python -I -m mercat.workloads.child WORKDIR`) that

- sets its own resource limits first, before it imports numpy or reads an input
  (`resource.setrlimit`: address space, CPU seconds, the size of any file it writes, open
  files, no core dumps), and asks Linux to kill it if its parent dies;
- runs in its own session (process group) in a private work directory, with an environment
  of a few variables (BLAS pinned to one thread: the same sums in the same order on every
  replica, and no thread pool per child on a shared machine), isolated from the user's
  site-packages and PYTHON* variables (`-I`);
- reads its inputs from files the parent wrote, writes `output.npz` and `result.json`.

Every run's directory holds the task's inputs in the clear (a sealed task's decrypted
inputs too) and is removed when the run ends, however it ends. A process killed outright
(SIGKILL, the OOM killer) cannot remove it, so directories are named for the process that
made them (`mercat-task-PID-…`, `mercat-zygote-PID-…`), and a `Sandbox` removes those of
dead processes in its parent directory when it starts (`sweep`).

The parent waits at most `Limits.seconds` of wall time, then kills the whole process group
(SIGKILL). The outcome is a `SandboxRun`; a run that did not finish raises `SandboxError`
with its `reason` ("timeout", "memory", "crashed", "output"); a workload that refused its
inputs raises `InvalidWorkloadError` with the workload's own message.

Failure injection (devnets): `crash=True` makes the child kill itself after computing (a
provider that dies mid-task); `corrupt=True` alters the result slightly
(`mercat.workloads.catalog.execute`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercat import validation as check
from mercat.errors import InvalidWorkloadError, SandboxError
from mercat.lifetime import sweep_left_behind, with_parent

RESULT_BYTES = 64 << 10  # result.json and the tail of stderr that is kept
_LEFT_BEHIND = re.compile(r"mercat-(?:task|zygote)-([0-9]+)-.*")


@dataclass(frozen=True)
class Limits:
    """What one run may take: wall-clock seconds (also its CPU seconds), address space,
    and the size of its output archive."""

    seconds: float = 60.0
    memory_bytes: int = 1 << 30
    output_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        check.positive("sandbox seconds", self.seconds)
        check.integer("sandbox memory_bytes", self.memory_bytes, 64 << 20)
        check.integer("sandbox output_bytes", self.output_bytes, 1 << 10)


@dataclass(frozen=True)
class SandboxRun:
    output: bytes
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _absolute(parent_dir: str | os.PathLike[str] | None) -> str | None:
    """A parent directory given relative (`mercat agent --workdir work`) made absolute: the
    child runs in its own directory, where a relative path would name another place."""
    return None if parent_dir is None else os.path.abspath(parent_dir)


def _prefix(what: str) -> str:
    """The name a directory of this process starts with (`sweep` reads the id back)."""
    return f"mercat-{what}-{os.getpid()}-"


def sweep(parent_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Remove the run and zygote directories that processes of this user which are no longer
    alive left in `parent_dir` (the system's temporary directory by default); the names of
    those removed."""
    parent = parent_dir if parent_dir is not None else tempfile.gettempdir()
    return [path.name for path in sweep_left_behind(parent, _LEFT_BEHIND)]


def child_environment(workdir: Path) -> dict[str, str]:
    threads = "1"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "NUMBA_NUM_THREADS": threads,
    }


def run(
    workload: str,
    inputs: Sequence[bytes],
    limits: Limits | None = None,
    *,
    crash: bool = False,
    corrupt: bool = False,
    parent_dir: str | os.PathLike[str] | None = None,
) -> SandboxRun:
    """Run `workload` (a workload string) on `inputs` (archive bytes) in a fresh child
    interpreter: the readable reference (module docstring). `parent_dir`: where the private
    work directory is made (removed afterwards whatever happens)."""
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix=_prefix("task"), dir=_absolute(parent_dir)) as tmp:
        workdir = Path(tmp)
        _prepare(workdir, workload, inputs, limits, crash, corrupt)
        started = time.perf_counter()
        with open(workdir / "stderr.txt", "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-I", "-m", "mercat.workloads.child", str(workdir)],
                cwd=workdir,
                env=with_parent(child_environment(workdir)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: killed as a whole
            )
            try:
                code = process.wait(timeout=limits.seconds)
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_group(process)
                code, timed_out = -signal.SIGKILL, True
            except BaseException:  # interrupted (the agent stops): the child goes with it
                _kill_group(process)
                raise
        return _outcome(workdir, code, time.perf_counter() - started, limits, timed_out)


def _prepare(
    workdir: Path,
    workload: str,
    inputs: Sequence[bytes],
    limits: Limits,
    crash: bool,
    corrupt: bool,
) -> None:
    """The inputs as files and the job description, in the run's directory."""
    names = []
    for i, blob in enumerate(inputs):
        name = f"input{i}.npz"
        (workdir / name).write_bytes(blob)
        names.append(name)
    job = {
        "workload": workload,
        "inputs": names,
        "crash": crash,
        "corrupt": corrupt,
        "limits": {
            "seconds": limits.seconds,
            "memory_bytes": limits.memory_bytes,
            "output_bytes": limits.output_bytes,
        },
    }
    (workdir / "job.json").write_text(json.dumps(job), encoding="utf-8")


class Sandbox:
    """Runs through one zygote (the fast path, `mercat.workloads.zygote`): the same child,
    limits and outcome as `run`, without an interpreter start per run; any number of threads
    may run at once. A zygote that dies or stops answering is replaced (the runs it held
    fail as crashed); `start` starts it ahead of the first run; `close` stops it, and any
    run in progress with it. The first zygote's start removes what dead processes left in
    the parent directory (`sweep`)."""

    def __init__(
        self, limits: Limits | None = None, parent_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.parent_dir = _absolute(parent_dir)
        self._zygote: _Zygote | None = None
        self._swept = False
        self._lock = threading.Lock()

    def start(self) -> Sandbox:
        self._current()
        return self

    def run(
        self, workload: str, inputs: Sequence[bytes], *, crash: bool = False,
        corrupt: bool = False,
    ) -> SandboxRun:  # fmt: skip
        limits = self.limits
        with tempfile.TemporaryDirectory(prefix=_prefix("task"), dir=self.parent_dir) as tmp:
            workdir = Path(tmp)
            _prepare(workdir, workload, inputs, limits, crash, corrupt)
            zygote = self._current()
            started = time.perf_counter()
            try:
                code, timed_out = zygote.run(workdir, limits.seconds)
            except SandboxError:
                self._replace(zygote)
                raise
            return _outcome(workdir, code, time.perf_counter() - started, limits, timed_out)

    def _current(self) -> _Zygote:
        with self._lock:
            if not self._swept:
                self._swept = True
                sweep(self.parent_dir)
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = _Zygote(self.parent_dir)
            return self._zygote

    def _replace(self, zygote: _Zygote) -> None:
        with self._lock:
            if self._zygote is zygote:
                self._zygote = None
        zygote.close()

    def close(self) -> None:
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()


class _Zygote:
    """One zygote process, its pipes, and the runs waiting for their answers."""

    START_SECONDS = 120.0
    SLACK_SECONDS = 30.0  # beyond a run's limit, before the zygote counts as hung

    def __init__(self, parent_dir: str | os.PathLike[str] | None) -> None:
        self._home = tempfile.TemporaryDirectory(prefix=_prefix("zygote"), dir=parent_dir)
        home = Path(self._home.name)
        self.stderr = open(home / "zygote.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "mercat.workloads.zygote"],
            cwd=home,
            env=with_parent(child_environment(home)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self._write_lock = threading.Lock()
        self._answers: dict[int, list[Any]] = {}  # id -> [event, answer]
        self._next = 0
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()
        if not self._ready.wait(self.START_SECONDS):
            self.close()
            raise SandboxError("the sandbox's zygote did not start", "crashed")

    def alive(self) -> bool:
        return self.process.poll() is None and self._reader.is_alive()

    def _read(self) -> None:
        """Answers as they come, to the run waiting for each; at the end, wake them all."""
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                answer = json.loads(line)
                if answer.get("ready"):
                    self._ready.set()
                    continue
                with self._write_lock:
                    waiting = self._answers.get(int(answer["id"]))
                if waiting is not None:
                    waiting[1] = answer
                    waiting[0].set()
        except (ValueError, KeyError, TypeError, OSError):
            pass
        finally:
            with self._write_lock:
                for waiting in self._answers.values():
                    waiting[0].set()

    def run(self, workdir: Path, seconds: float) -> tuple[int, bool]:
        assert self.process.stdin is not None
        waiting: list[Any] = [threading.Event(), None]
        with self._write_lock:
            self._next += 1
            job = self._next
            self._answers[job] = waiting
            try:
                line = {"id": job, "workdir": str(workdir), "seconds": seconds}
                self.process.stdin.write((json.dumps(line) + "\n").encode())
                self.process.stdin.flush()
            except OSError:
                del self._answers[job]
                raise SandboxError("the sandbox's zygote is gone", "crashed") from None
        try:
            waiting[0].wait(seconds + self.SLACK_SECONDS)
        finally:
            with self._write_lock:
                self._answers.pop(job, None)
        answer = waiting[1]
        if answer is None:
            raise SandboxError("the sandbox's zygote stopped answering", "crashed")
        return int(answer["status"]), bool(answer["timed_out"])

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()  # the zygote's cue to exit (its runs with it)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill_group(self.process)
        self._reader.join(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.stderr.close()
        self._home.cleanup()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group. Only while the child is unreaped: its id cannot
    have been reused by then."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _outcome(
    workdir: Path, code: int, seconds: float, limits: Limits, timed_out: bool
) -> SandboxRun:
    if timed_out:
        raise SandboxError(
            f"the workload ran past its limit of {limits.seconds:g} s and was killed", "timeout"
        )
    result = _read_json(workdir / "result.json")
    if code == 0 and result.get("ok") is True:
        path = workdir / "output.npz"
        size = path.stat().st_size if path.exists() else -1
        if not 0 <= size <= limits.output_bytes:
            raise SandboxError("the workload wrote no output, or too much", "output")
        summary = result.get("summary")
        return SandboxRun(path.read_bytes(), summary if isinstance(summary, dict) else {}, seconds)
    if result.get("ok") is False:
        error = str(result.get("error", "the workload failed"))[:500]
        if result.get("kind") in ("memory", "output"):
            raise SandboxError(error, str(result["kind"]))
        raise InvalidWorkloadError(error)
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and seconds >= limits.seconds * 0.9:
        raise SandboxError("the workload used up its CPU time and was killed", "timeout")
    if code == -signal.SIGXFSZ:
        raise SandboxError(f"the workload wrote more than {limits.output_bytes} bytes", "output")
    tail = (workdir / "stderr.txt").read_bytes()[-400:].decode("utf-8", "replace").strip()
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    last = tail.splitlines()[-1] if tail else "no message"
    raise SandboxError(f"the workload crashed ({how}): {last}", "crashed")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(RESULT_BYTES))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
