"""Run every point of a scenario, in parallel, resumably: `mercat sweep`.

Backends:

- `local`: worker processes on this machine (`workers` of them; 1 runs the points in this
  process). Workers start from a fork server, ignore Ctrl-C (the sweep stops them) and use
  the cores they are given (numba's threads are split between them).
- `ray`: each point a Ray task. Without `ray_address` the sweep starts a local Ray with
  `workers` CPUs and no dashboard, and stops it at the end, and a task asks for its share of
  them (`workers` // the points run at once); with one (`auto`, `ray://host:10001`) it joins
  that cluster, whose workers must have mercat (and the scenario's plug-ins) installed, and
  a task asks for one CPU. A Ray already started in this process is used as it is (one CPU
  a task). A task sizes numba's threads where it runs, from the CPUs Ray gave it and the
  cores its process may use there (`task_threads`): the driver's machine may be another.

Either way a point runs the same function on the same parameters and seed (`run_point`),
and the driver writes its results (mercat.workbench.store), so the same scenario gives the
same tables on every backend and any number of workers.

Resuming: a point whose results are in the directory is not run again. Stopping: Ctrl-C or
SIGTERM stops the workers (local processes are terminated, Ray tasks cancelled) and raises
`SweepInterrupted`; finished points stay, the combined tables are written by the sweep that
finishes the last point. A point that fails stops the sweep with a `SweepError` naming it;
so does a result that cannot be written (a full disk, a read-only directory), with the
system's reason, and the directory stays marked incomplete.

One sweep at a time writes a directory (mercat.workbench.store.locked): a second one fails
at once with a `ResultsInUseError` naming the first one's pid.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercat.errors import InvalidParameterError, MercatError
from mercat.workbench import store
from mercat.workbench.scenario import Point, Scenario, import_plugins
from mercat.workbench.simulation import PointTables, Steps, simulation

BACKENDS = ("local", "ray")
WORKERS_PER_CORE = 4
"""The local backend's most worker processes per usable core. A point is CPU work: past one
process a core, more only share it, and each holds its own interpreter and arrays (some
100 MB). `--workers 10000` started one process per point, up to 10,000, before the first
finished; a larger pool is Ray's job."""


class SweepError(MercatError):
    """A point of a sweep failed; the points finished before it are kept."""


class SweepInterrupted(MercatError):
    """Ctrl-C or SIGTERM stopped a sweep; the finished points are kept."""


@dataclass(frozen=True)
class PointTask:
    """What a worker needs to run one point (plain data: it travels to other processes)."""

    simulation: str
    plugins: tuple[str, ...]
    index: int
    params: dict[str, Any]
    steps: Steps
    threads: int | None  # numba threads for this worker (None: as many as it likes)
    # on Ray the worker sizes them itself (`_run_on_ray`): the driver does not know its cores


@dataclass(frozen=True)
class PointOutcome:
    index: int
    result: PointTables | None
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did."""

    out: Path
    points: int
    computed: int
    reused: int
    seconds: float
    files: tuple[Path, ...]


def run_point(task: PointTask) -> PointOutcome:
    """Run one point (in any process): its tables, or the error that stopped it."""
    start = time.perf_counter()
    try:
        if task.threads:
            _limit_threads(task.threads)
        import_plugins(task.plugins)
        sim = simulation(task.simulation)
        config = sim.build(task.params)
        result = sim.run(config, task.params["runs"], task.params["seed"], task.steps)
    except Exception as exc:  # reported by the driver, which names the point
        kind = "" if isinstance(exc, MercatError) else f"{type(exc).__name__}: "
        return PointOutcome(task.index, None, time.perf_counter() - start, f"{kind}{exc}")
    return PointOutcome(task.index, result, time.perf_counter() - start)


def _limit_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share,
    which `os.cpu_count` ignores)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def task_threads(assigned_cpus: float | None, cores: int) -> int:
    """Numba threads for a Ray task: the whole CPUs Ray gave it (at least one), never more
    than the `cores` its process may use. Ray runs as many tasks on a node as the node has
    CPUs for, so a task that took more threads than its CPUs would oversubscribe it."""
    cpus = int(assigned_cpus) if assigned_cpus and assigned_cpus >= 1 else 1
    return max(1, min(cpus, cores))


def _run_on_ray(task: PointTask) -> PointOutcome:
    """`run_point` inside a Ray task, with numba's threads sized on the worker."""
    import dataclasses

    import ray

    assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
    threads = task_threads(assigned, usable_cores())
    return run_point(dataclasses.replace(task, threads=threads))


def check_backend(backend: str, workers: int | None, ray_address: str | None) -> None:
    """Refuse a backend, worker count or Ray address `run_sweep` cannot use (before anything
    is written or counted)."""
    if backend not in BACKENDS:
        raise InvalidParameterError(f"backend must be local or ray, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InvalidParameterError(f"workers must be at least 1, got {workers!r}")
    most = WORKERS_PER_CORE * usable_cores()
    if backend == "local" and workers is not None and workers > most:
        raise InvalidParameterError(
            f"workers: the local backend runs at most {most} processes on this machine's "
            f"{usable_cores()} cores ({WORKERS_PER_CORE} a core), got {workers}; "
            "use --backend ray for more"
        )
    if ray_address is not None and backend != "ray":
        raise InvalidParameterError("--ray-address needs --backend ray")


def run_sweep(
    scenario: Scenario,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepReport:
    """Run the scenario's points that `out` does not hold yet, then write the combined
    tables. `progress(done, total)` is told after each point."""
    out = Path(out)
    check_backend(backend, workers, ray_address)
    start = time.perf_counter()
    store.check(out, scenario)  # before the lock: a directory that is refused stays as it was
    with store.locked(out):
        return _run_locked(scenario, out, backend, workers, ray_address, progress, start)


def _run_locked(
    scenario: Scenario,
    out: Path,
    backend: str,
    workers: int | None,
    ray_address: str | None,
    progress: Callable[[int, int], None] | None,
    start: float,
) -> SweepReport:
    store.prepare(out, scenario)
    todo = [p for p in scenario.points if not store.is_done(out, p)]
    cores = usable_cores()
    workers = workers or cores
    steps = Steps(
        scenario.output.steps, scenario.output.step_every or scenario.simulation.default_step_every
    )
    parallel = min(workers, len(todo)) if todo else 1
    # local workers share this machine's cores; a Ray task sizes its own (`_run_on_ray`)
    threads = max(1, cores // parallel) if parallel > 1 and backend == "local" else None
    tasks = [
        PointTask(scenario.simulation_ref, scenario.plugins, p.index, p.params, steps, threads)
        for p in todo
    ]
    by_index = {p.index: p for p in todo}
    fresh: dict[str, PointTables] = {}  # this sweep's results, not read back to combine them
    done = 0

    def finished(outcome: PointOutcome) -> None:
        nonlocal done
        point = by_index[outcome.index]
        if outcome.error is not None or outcome.result is None:
            raise SweepError(f"{_describe(point, scenario)} failed: {outcome.error}")
        with _writing(out):
            store.write_point(out, point, outcome.result, outcome.seconds)
        fresh[point.key] = outcome.result
        done += 1
        if progress:
            progress(done, len(tasks))

    if tasks:
        with _stop_on_sigterm():
            if backend == "ray":
                _run_ray(tasks, finished, workers, ray_address)
            else:
                _run_local(tasks, finished, workers)
    with _writing(out):
        tables = store.combine(out, scenario, fresh)
        files = store.write_tables(out, scenario, tables, scenario.output.formats)
        store.remove_stale_tables(out, files)
        # last: a directory whose tables were not all written stays marked incomplete
        store.write_manifest(out, scenario, complete=True)
    return SweepReport(
        out=out,
        points=len(scenario.points),
        computed=len(tasks),
        reused=len(scenario.points) - len(tasks),
        seconds=time.perf_counter() - start,
        files=tuple(files),
    )


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """A full disk, a read-only or vanished directory: one `SweepError`, not a traceback.
    Every file is written whole or not at all (mercat.workbench.store), so what is there
    stays usable for the next sweep."""
    try:
        yield
    except OSError as exc:
        what = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename else ""
        raise SweepError(
            f"cannot write results to {out}: {what}{where}; the finished points are kept: "
            "make room or fix the directory, then run again to resume"
        ) from None


def _describe(point: Point, scenario: Scenario) -> str:
    labels = [f"case {point.case}"] if point.case is not None else []
    labels += [f"variant {point.variant}"] if point.variant is not None else []
    # the variant's name stands for what it sets
    named = scenario.variants.get(point.variant, {}) if point.variant is not None else {}
    labels += [f"{k}={v}" for k, v in point.design.items() if k not in named]
    return f"point {point.index}" + (f" ({', '.join(labels)})" if labels else "")


# --- local processes --------------------------------------------------------------------------


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_local(
    tasks: list[PointTask], finished: Callable[[PointOutcome], None], workers: int
) -> None:
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            finished(run_point(task))
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    # an executor, not multiprocessing.Pool: a Pool whose workers (or forkserver) are killed
    # from outside tries to start new ones and can hang in terminate(); the executor reports
    # a dead worker as BrokenProcessPool and never restarts one behind our back
    executor = ProcessPoolExecutor(
        min(workers, len(tasks)),
        mp_context=multiprocessing.get_context(method),
        initializer=_ignore_sigint,
    )
    try:
        for future in as_completed([executor.submit(run_point, task) for task in tasks]):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                raise SweepError(
                    "a worker process died (killed, or out of memory); the finished points "
                    "are kept: run again to resume"
                ) from None
            finished(outcome)
    except BaseException:
        # a failed point, Ctrl-C or SIGTERM: stop every worker now, not after its point
        processes = list((executor._processes or {}).values())  # no public handle on them
        # shutdown() forgets its manager thread even when it does not wait for it: keep it
        manager = executor._executor_manager_thread
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
        # the manager thread sees its workers gone and ends: join it here, not in the
        # interpreter's exit hook, where Python 3.11 can race it (a traceback at exit)
        if manager is not None:
            manager.join(30)
        raise
    executor.shutdown()


# --- Ray ----------------------------------------------------------------------------------------


def _run_ray(
    tasks: list[PointTask],
    finished: Callable[[PointOutcome], None],
    workers: int,
    address: str | None,
) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        # ray.init installs its own handlers (SIGTERM ends the process at once, SIGINT does
        # not reach Python): put back ours, so both stop the sweep and cancel its tasks
        handlers = _signal_handlers()
        try:
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # Ray's own errors: no cluster there, a bad address
            raise InvalidParameterError(f"cannot start or reach Ray: {exc}") from exc
        finally:
            _restore_signal_handlers(handlers)
        started = True
    # a Ray of our own has `workers` CPUs: each task takes its share, so that few points
    # still use them all; another Ray's CPUs are not ours to share out
    cpus = max(1, workers // min(workers, len(tasks))) if started and address is None else 1
    remote = ray.remote(num_cpus=cpus, max_retries=0)(_run_on_ray)
    pending = {remote.remote(task): task.index for task in tasks}
    try:
        while pending:
            # a short wait: Python runs Ctrl-C's and SIGTERM's handlers only between calls,
            # and a wait without a timeout blocks in Ray's core until a task finishes
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            for ref in ready:
                pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker died or was lost
                    raise SweepError(
                        f"a Ray task died ({type(exc).__name__}); the finished points are "
                        "kept: run again to resume"
                    ) from None
                finished(outcome)
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # Ray's own processes may be going too (Ctrl-C reached them)
                break
        raise
    finally:
        if started:
            ray.shutdown()


def _signal_handlers() -> dict[int, Any]:
    try:
        return {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        return {}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


# --- stopping -----------------------------------------------------------------------------------


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops a sweep as Ctrl-C does (in the main thread; elsewhere it is left alone)."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    except KeyboardInterrupt:
        raise SweepInterrupted(
            "stopped: the finished points are kept; run again to resume"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
