"""Heavy work off the node's process: a bounded pool of worker processes, with a bounded
queue, a time limit and a memory limit per job.

A solve is CPU for as long as the market makes it, and memory and threads as the solver
takes them; in the node's own process neither could be stopped once started (a thread cannot
be killed), and a solver's process-wide state would outlive the request. In a worker process
a job that runs past `time_limit` is killed with its process, one that needs more than
`memory_bytes` fails its allocation (MemoryError, reported as WorkTooLargeError), and nothing
it leaves behind reaches the next request served by a fresh process.

- `workers` processes, each running one job at a time, started when first needed and
  reused; a killed one is replaced on demand.
- At most `queue` jobs wait for a free worker; the next one is refused at once with
  NodeBusyError (503, Retry-After).
- Workers come from a fork server that imported the clearing stack once (`PRELOAD`): a new
  worker starts in tens of milliseconds, and is forked from a process with no threads.
- Jobs are module-level functions and their arguments, both pickled; the worker returns the
  function's value or the mercat error it raised (any other exception becomes InternalError;
  its traceback goes to the worker's stderr, i.e. the node's log).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import anyio
from anyio import to_thread

from mercat import errors as e
from mercat.lifetime import die_with_parent

# Imported once by the fork server, so every worker starts with them loaded.
PRELOAD = ["mercat.node.jobs"]


class _Worker:
    """One worker process and our end of its pipe."""

    def __init__(self, context: Any, memory_bytes: int | None) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(theirs, memory_bytes), daemon=True, name="mercat-worker"
        )
        self.process.start()
        theirs.close()
        self.connection: Connection = ours

    def exchange(self, job: tuple[Callable[..., Any], tuple[Any, ...]], seconds: float) -> Any:
        """Send `job`, wait at most `seconds` for its outcome (blocking: run in a thread)."""
        self.connection.send(job)
        if not self.connection.poll(seconds):
            raise e.WorkTimeoutError(
                f"the job ran past this node's limit of {seconds:g} s and was stopped"
            )
        try:
            kind, value = self.connection.recv()
        except (EOFError, OSError):
            code = self.process.exitcode
            raise e.InternalError(f"the worker process died (exit code {code})") from None
        if kind == "error":
            raise value
        return value

    def kill(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class WorkerPool:
    """See the module docstring. `call` from the event loop; `close` when the node stops."""

    def __init__(
        self, workers: int, queue: int, time_limit: float, memory_bytes: int | None = None
    ) -> None:
        self.time_limit = time_limit
        self.queue = queue
        self.memory_bytes = memory_bytes
        self._slots = anyio.Semaphore(workers)
        self._waiting = 0
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._context: Any = None

    @property
    def started(self) -> int:
        """Worker processes alive now (idle or busy)."""
        return len(self._idle) + len(self._busy)

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a worker: its value, or the error it raised. NodeBusyError
        when the queue is full; WorkTimeoutError, WorkTooLargeError as above."""
        if self._slots.value == 0 and self._waiting >= self.queue:
            raise e.NodeBusyError(
                f"every worker of this node is busy and {self.queue} jobs are waiting",
                retry_after=min(self.time_limit, 60.0),
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            worker = self._idle.pop() if self._idle else await to_thread.run_sync(self._start)
            self._busy.add(worker)
            reusable = False
            try:
                result = await to_thread.run_sync(
                    worker.exchange, (function, args), self.time_limit, abandon_on_cancel=True
                )
                reusable = True
            except e.MercatError as error:
                # The job's own error, sent back whole: the worker is fine. Anything else
                # (a timeout, a death, the request cancelled mid-job) ends the process.
                reusable = not isinstance(
                    error, e.WorkTimeoutError | e.WorkTooLargeError | e.InternalError
                )
                raise
            finally:
                self._busy.discard(worker)
                if reusable:
                    self._idle.append(worker)
                else:
                    worker.kill()
            return result
        finally:
            self._slots.release()

    def _start(self) -> _Worker:
        if self._context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                self._context = multiprocessing.get_context("forkserver")
                self._context.set_forkserver_preload(PRELOAD)
            else:  # pragma: no cover - platforms without fork (the node targets Linux)
                self._context = multiprocessing.get_context("spawn")
        return _Worker(self._context, self.memory_bytes)

    def close(self) -> None:
        """Stop every worker, busy ones included."""
        for worker in [*self._idle, *self._busy]:
            worker.kill()
        self._idle.clear()
        self._busy.clear()


def _serve(connection: Connection, memory_bytes: int | None) -> None:
    """A worker's life: jobs in, outcomes out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the node, which kills us
    _die_with_parent()
    if memory_bytes is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[str, Any] = ("ok", function(*args))
        except MemoryError:
            outcome = ("error", e.WorkTooLargeError(_too_large(memory_bytes)))
        except RecursionError:
            outcome = ("error", e.InvalidParameterError("the input is nested too deeply"))
        except e.MercatError as error:
            outcome = ("error", _portable(error))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            outcome = ("error", e.InternalError("the job failed; the node logged why"))
        try:
            connection.send(outcome)
        except MemoryError:
            connection.send(("error", e.WorkTooLargeError(_too_large(memory_bytes))))


def _portable(error: e.MercatError) -> e.MercatError:
    """`error` if it survives pickling (the pipe), else the same message as a plain class of
    the same kind: a custom constructor may not take its own `args` back."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        kind = e.InvalidParameterError if isinstance(error, ValueError) else e.SolverError
        return kind(str(error))


def _too_large(memory_bytes: int | None) -> str:
    limit = "its memory" if memory_bytes is None else f"{math.ceil(memory_bytes / 2**20)} MiB"
    return f"the job needed more memory than this node allows one job ({limit})"


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the fork server that forked it exits (it exits
    with the node), so that no solve outlives a node that was killed."""
    die_with_parent(signal.SIGKILL)
    if sys.platform.startswith("linux") and os.getppid() == 1:  # the parent is already gone
        os._exit(1)
