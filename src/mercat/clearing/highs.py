"""Solving a `MilpEncoding` with HiGHS (highspy): the one place that talks to the solver.

HiGHS prints a banner on stdout the first time a solver is built in a process; `new_solver`
builds it with stdout pointed at /dev/null, so `--json` output stays clean.

Every solve goes through `run`, because HiGHS keeps state outside a `Highs` instance: each OS
thread has its own task scheduler, created by the first solve in that thread with that
solve's `threads` option and kept for the thread's life. A later solve in the same thread that
asks for another thread count is refused by HiGHS (it logs an error and leaves the model
status "Not Set"), so without `run` one solve's option would decide every later solve on the
thread -- in a server's worker-thread pool, every later solve of the process. `run` gives each
solve the scheduler its own option asks for, and drops a multi-threaded scheduler after the
solve, so that no thread keeps idle solver threads alive.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from mercat.errors import SolverError
from mercat.market.constraints import MilpEncoding
from mercat.market.model import relative_gap

_banner_swallowed = False
_scheduler = threading.local()  # .threads: the thread count of this thread's HiGHS scheduler

SMALLEST_COEFFICIENT = 1e-12
"""HiGHS's lower limit on a matrix entry (its `small_matrix_value` option cannot go lower);
`solve_max` leaves out smaller entries itself rather than have HiGHS reject the model. In
`constraints.encode` they can only be a capacity row's share of a demand far below the
node's limit (the rows are scaled to at most 1); leaving one out relaxes the row, and
`clearing.optimal` cuts off any answer that the relaxed row let over `capacity_limit`."""


def new_solver(threads: int = 1):  # -> highspy.Highs (kept untyped: highspy loads lazily)
    """A silent HiGHS instance (the start-up banner, printed once per process, swallowed)."""
    global _banner_swallowed
    import highspy

    if _banner_swallowed:
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        solver.setOptionValue("threads", int(threads))
        return solver
    _banner_swallowed = True
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        ctypes.CDLL(None).fflush(None)  # the banner sits in C's stdout buffer until flushed
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    solver.setOptionValue("threads", int(threads))
    return solver


def run(solver):  # -> highspy.HighsStatus
    """`solver.run()` with the HiGHS scheduler of the calling thread set to the solver's own
    `threads` option (see the module docstring): options never leak from one solve to the
    next."""
    import highspy

    threads = solver.getOptionValue("threads")
    if isinstance(threads, tuple):  # highspy >= 1.16 answers (status, value)
        threads = threads[1]
    if getattr(_scheduler, "threads", threads) != threads:
        highspy.Highs.resetThreadScheduler(True)  # blocking: its threads have stopped
    _scheduler.threads = threads
    try:
        return solver.run()
    finally:
        if threads != 1:  # a single-threaded scheduler holds no extra thread: keep it
            highspy.Highs.resetThreadScheduler(True)
            del _scheduler.threads


@dataclass(frozen=True)
class MilpResult:
    """A solve's outcome: `x` the best point found, `objective` its value, `bound` a proven
    upper bound (maximisation), `gap` their relative gap, `proven` HiGHS's optimal status."""

    x: np.ndarray
    objective: float
    bound: float
    gap: float
    proven: bool
    status: str
    nodes: int
    seconds: float


def solve_max(
    encoding: MilpEncoding,
    *,
    time_limit: float | None = None,
    rel_gap: float = 1e-9,
    abs_gap: float = 1e-9,
    seed: int = 0,
    threads: int = 1,
) -> MilpResult:
    """Maximise encoding.objective·x over the encoding's feasible set."""
    import highspy

    start = time.perf_counter()
    if encoding.num_cols == 0:
        return MilpResult(np.zeros(0), 0.0, 0.0, 0.0, True, "Empty", 0, 0.0)
    solver = new_solver(threads)
    lp = highspy.HighsLp()
    lp.num_col_ = encoding.num_cols
    lp.num_row_ = encoding.num_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = encoding.objective
    lp.col_lower_ = encoding.col_lower
    lp.col_upper_ = encoding.col_upper
    inf = highspy.kHighsInf
    lp.row_lower_ = np.where(np.isinf(encoding.row_lower), -inf, encoding.row_lower)
    lp.row_upper_ = np.where(np.isinf(encoding.row_upper), inf, encoding.row_upper)
    matrix = encoding.matrix
    if matrix.nnz and np.abs(matrix.data).min() < SMALLEST_COEFFICIENT:
        matrix = matrix.copy()
        matrix.data[np.abs(matrix.data) < SMALLEST_COEFFICIENT] = 0.0
        matrix.eliminate_zeros()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = encoding.num_cols
    lp.a_matrix_.num_row_ = encoding.num_rows
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(float)
    has_integers = bool(encoding.integral.any())
    if has_integers:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in encoding.integral
        ]
    solver.setOptionValue("small_matrix_value", SMALLEST_COEFFICIENT)
    if solver.passModel(lp) != highspy.HighsStatus.kOk:
        raise SolverError("HiGHS rejected the clearing model")
    solver.setOptionValue("mip_rel_gap", float(rel_gap))
    solver.setOptionValue("mip_abs_gap", float(abs_gap))
    solver.setOptionValue("random_seed", int(seed) % (2**31 - 1))
    solver.setOptionValue("primal_feasibility_tolerance", 1e-9)
    solver.setOptionValue("mip_feasibility_tolerance", 1e-9)
    # HiGHS's presolve (1.16) merges parallel integer columns and then misjudges rows whose
    # coefficients sit within its tolerance of the bound: on Σ a x <= 1 with binaries and
    # a = (1e-8, 1 - 2e-9, 1e-8, 1 - 2e-9) it reports 0.25 optimal where 0.5 is feasible.
    # Capacities near sums of demands make exactly such rows, so clearing never presolves;
    # on the generators' markets (up to 80 requests x 20 nodes) it solves as fast without.
    solver.setOptionValue("presolve", "off")
    if time_limit is not None:
        solver.setOptionValue("time_limit", float(time_limit))
    run(solver)
    status = solver.getModelStatus()
    name = solver.modelStatusToString(status)
    info = solver.getInfo()
    solution = solver.getSolution()
    has_point = bool(solution.value_valid)
    x = np.array(solution.col_value) if has_point else np.zeros(encoding.num_cols)
    objective = float(encoding.objective @ x)
    proven = status == highspy.HighsModelStatus.kOptimal
    if has_integers:
        bound = float(info.mip_dual_bound)
    elif proven:
        bound = objective
    else:
        bound = math.inf
    if not math.isfinite(bound):
        bound = math.inf
    usable = (
        highspy.HighsModelStatus.kOptimal,
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kIterationLimit,
        highspy.HighsModelStatus.kSolutionLimit,
        highspy.HighsModelStatus.kInterrupt,
        highspy.HighsModelStatus.kModelEmpty,
    )
    if status not in usable:  # x = 0 is always feasible here, so anything else is a fault
        raise SolverError(f"HiGHS could not solve the clearing model (status {name})")
    # Stopped early without an incumbent: x = 0 (serve nobody) is valid, the bound unknown.
    gap = relative_gap(bound, objective)
    return MilpResult(
        x=x,
        objective=objective,
        bound=bound,
        gap=gap,
        proven=proven,
        status=name,
        nodes=int(info.mip_node_count) if has_integers else 0,
        seconds=time.perf_counter() - start,
    )
