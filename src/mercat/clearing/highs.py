"""Solving a `MilpEncoding` with HiGHS (highspy): the one place that talks to the solver.

`solve_max` solves a MILP once (optionally from a known feasible point); `LpRelaxation` keeps
the LP relaxation of a model in one HiGHS instance, so that a model solved again after a
small change (some costs, bounds, rows) starts from the last optimal basis.

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
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mercat.errors import SolverError
from mercat.market.constraints import MilpEncoding, Row, rows_matrix
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


PARALLEL_ROWS_AND_COLUMNS = 1 << 13
"""The `presolve_rule_off` bit of HiGHS's presolve rule "Parallel rows and columns" (rule 13
of its `PresolveRuleType`; HiGHS logs it as "Rule 13 (set bit 13 = 8192)"). Its test for
two parallel columns costing the same is an absolute tolerance on a cost scaled by the
columns' coefficient ratio; on the tie it merges integer columns, and a row whose
coefficients sit within tolerance of its bound is then misjudged (see `solve_max`)."""


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
    options: Mapping[str, bool | int | float | str] | None = None,
    initial: np.ndarray | None = None,
    presolve: bool = False,
    may_be_infeasible: bool = False,
) -> MilpResult:
    """Maximise encoding.objective·x over the encoding's feasible set. `options` are further
    HiGHS options (how it searches, never what it accepts as optimal). `initial`, a feasible
    point if the caller knows one, is HiGHS's first incumbent: it prunes with it from the
    root on instead of searching for a point first (HiGHS checks it and ignores an
    infeasible one).

    `presolve` runs HiGHS's presolve without its parallel rows and columns rule
    (`PARALLEL_ROWS_AND_COLUMNS`): with that rule, HiGHS 1.16 reported 0.25 optimal where
    0.5 is feasible (the row in the comment below); the rule merges parallel integer
    columns on a cost tie judged by an absolute tolerance. A start and presolve together
    are refused (ValueError): HiGHS 1.16 can map the start to a point of another value
    and report the start itself as optimal with a bound it does not reach, with or without
    that rule (seen on a 14 × 5 challenge MILP, and on an 11-column posted-price model in
    tests/clearing/test_highs.py). By default clearing solves without presolve (measured
    as fast on the generators' markets up to 80 requests × 20 nodes); a caller whose
    models are large asks for it (the posted-price challenge MILP at 200 × 50: about 4×
    less CPU). Either way a proven result whose point falls short of its bound raises
    `SolverError`.

    Clearing models always contain x = 0, so an infeasible one is a fault; a caller that
    restricts a model below what it knows (`may_be_infeasible`) gets status "Infeasible",
    proven, with objective and bound -inf instead."""
    import highspy

    if presolve and initial is not None:
        raise ValueError(
            "HiGHS 1.16 can misreport a MIP start after presolve: pass one or the other"
        )
    start = time.perf_counter()
    if encoding.num_cols == 0:
        return MilpResult(np.zeros(0), 0.0, 0.0, 0.0, True, "Empty", 0, 0.0)
    solver = new_solver(threads)
    has_integers = bool(encoding.integral.any())
    solver.setOptionValue("small_matrix_value", SMALLEST_COEFFICIENT)
    if solver.passModel(_highs_lp(encoding, integral=True)) != highspy.HighsStatus.kOk:
        raise SolverError("HiGHS rejected the clearing model")
    # The caller's options first: the settings below (gaps, tolerances, no presolve) decide
    # what counts as optimal and are not the caller's to change.
    for name, value in (options or {}).items():
        if solver.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise SolverError(f"HiGHS refused the option {name}={value!r}")
    solver.setOptionValue("mip_rel_gap", float(rel_gap))
    solver.setOptionValue("mip_abs_gap", float(abs_gap))
    solver.setOptionValue("random_seed", int(seed) % (2**31 - 1))
    solver.setOptionValue("primal_feasibility_tolerance", 1e-9)
    solver.setOptionValue("mip_feasibility_tolerance", 1e-9)
    # HiGHS's presolve (1.16) merges parallel integer columns and then misjudges rows whose
    # coefficients sit within its tolerance of the bound: on Σ a x <= 1 with binaries and
    # a = (1e-8, 1 - 2e-9, 1e-8, 1 - 2e-9) it reports 0.25 optimal where 0.5 is feasible.
    # Capacities near sums of demands make exactly such rows. Without the merging rule the
    # same row is solved right (tests/clearing/test_capacity_rule.py), so a presolve asked
    # for runs without that rule.
    if presolve:  # the caller may switch further rules off, never this one back on
        rules_off = int((options or {}).get("presolve_rule_off", 0)) | PARALLEL_ROWS_AND_COLUMNS
        solver.setOptionValue("presolve", "on")
        solver.setOptionValue("presolve_rule_off", rules_off)
    else:
        solver.setOptionValue("presolve", "off")
    if time_limit is not None:
        solver.setOptionValue("time_limit", float(time_limit))
    if initial is not None:
        point = highspy.HighsSolution()
        point.col_value = np.asarray(initial, dtype=float).tolist()
        point.value_valid = True
        if solver.setSolution(point) == highspy.HighsStatus.kError:
            raise SolverError("HiGHS refused the MIP start")
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
    if may_be_infeasible and status == highspy.HighsModelStatus.kInfeasible:
        seconds = time.perf_counter() - start
        return MilpResult(
            np.zeros(encoding.num_cols), -math.inf, -math.inf, 0.0, True, name, 0, seconds
        )
    if status not in usable:  # x = 0 is always feasible here, so anything else is a fault
        raise SolverError(f"HiGHS could not solve the clearing model (status {name})")
    # Stopped early without an incumbent: x = 0 (serve nobody) is valid, the bound unknown.
    if proven and has_integers and bound - objective > 1e-6 * max(1.0, abs(bound)):
        raise SolverError(
            f"HiGHS reported an optimum of {bound:.9g} that its solution ({objective:.9g}) "
            "does not reach"
        )
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


def _highs_lp(encoding: MilpEncoding, *, integral: bool):
    """The encoding as a highspy.HighsLp to maximise (integrality only if `integral`)."""
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_ = encoding.num_cols
    lp.num_row_ = encoding.num_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = encoding.objective
    lp.col_lower_ = encoding.col_lower
    lp.col_upper_ = encoding.col_upper
    lp.row_lower_ = _highs_bounds(encoding.row_lower)
    lp.row_upper_ = _highs_bounds(encoding.row_upper)
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
    if integral and encoding.integral.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in encoding.integral
        ]
    return lp


def _highs_bounds(values) -> np.ndarray:
    import highspy

    values = np.asarray(values, dtype=float)
    return np.where(
        np.isposinf(values),
        highspy.kHighsInf,
        np.where(np.isneginf(values), -highspy.kHighsInf, values),
    )


@dataclass(frozen=True)
class LpSolution:
    """An optimal point of an LP relaxation and its row duals y (HiGHS's convention for a
    maximisation: reduced costs c - Aᵀy, y ≥ 0 on rows at their upper bound)."""

    x: np.ndarray
    duals: np.ndarray
    objective: float
    iterations: int


class LpRelaxation:
    """The LP relaxation of a `MilpEncoding`, kept in one HiGHS instance between solves.

    A caller that solves a sequence of similar models changes what differs (`set_costs`,
    `truncate` and `append` for the rows and columns at the end) and calls `solve` again:
    HiGHS starts from the last optimal basis, which after a small change is a few simplex
    iterations from the new optimum instead of a solve from scratch.
    """

    def __init__(self, encoding: MilpEncoding, threads: int = 1) -> None:
        import highspy

        self._solver = new_solver(threads)
        self._solver.setOptionValue("small_matrix_value", SMALLEST_COEFFICIENT)
        if self._solver.passModel(_highs_lp(encoding, integral=False)) != highspy.HighsStatus.kOk:
            raise SolverError("HiGHS rejected the LP relaxation")
        self._solver.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self._solver.setOptionValue("dual_feasibility_tolerance", 1e-9)
        self.num_cols = encoding.num_cols
        self.num_rows = encoding.num_rows
        self.solves = 0

    def set_costs(self, columns, costs) -> None:
        columns = np.asarray(columns, dtype=np.int32)
        if len(columns):
            self._solver.changeColsCost(len(columns), columns, np.asarray(costs, dtype=float))

    def set_bounds(self, columns, lower, upper) -> None:
        columns = np.asarray(columns, dtype=np.int32)
        if len(columns):
            self._solver.changeColsBounds(
                len(columns), columns, _highs_bounds(lower), _highs_bounds(upper)
            )

    def truncate(self, num_cols: int, num_rows: int) -> None:
        """Delete every column from `num_cols` on and every row from `num_rows` on."""
        if self.num_rows > num_rows:
            self._solver.deleteRows(
                self.num_rows - num_rows, np.arange(num_rows, self.num_rows, dtype=np.int32)
            )
            self.num_rows = num_rows
        if self.num_cols > num_cols:
            self._solver.deleteCols(
                self.num_cols - num_cols, np.arange(num_cols, self.num_cols, dtype=np.int32)
            )
            self.num_cols = num_cols

    def delete_rows(self, rows) -> None:
        """Delete these rows (indices); the rows after them move up."""
        rows = np.unique(np.asarray(rows, dtype=np.int32))
        if len(rows):
            self._solver.deleteRows(len(rows), rows)
            self.num_rows -= len(rows)

    def append(self, costs, lower, upper, rows: list[Row]) -> None:
        """Add columns (their costs and bounds; no entries yet), then rows over all columns."""
        costs = np.asarray(costs, dtype=float)
        if len(costs):
            empty = np.zeros(len(costs) + 1, dtype=np.int32)
            self._solver.addCols(
                len(costs),
                costs,
                _highs_bounds(lower),
                _highs_bounds(upper),
                0,
                empty,
                np.zeros(0, dtype=np.int32),
                np.zeros(0),
            )
            self.num_cols += len(costs)
        if rows:
            matrix = rows_matrix(rows, self.num_cols)
            self._solver.addRows(
                len(rows),
                _highs_bounds([lo for _, lo, _ in rows]),
                _highs_bounds([hi for _, _, hi in rows]),
                matrix.nnz,
                matrix.indptr.astype(np.int32),
                matrix.indices.astype(np.int32),
                matrix.data.astype(float),
            )
            self.num_rows += len(rows)

    def solve(self, may_be_infeasible: bool = False) -> LpSolution | None:
        """The LP's optimum; None if it is infeasible and the caller said it may be."""
        import highspy

        self.solves += 1
        run(self._solver)
        status = self._solver.getModelStatus()
        if may_be_infeasible and status == highspy.HighsModelStatus.kInfeasible:
            return None
        if status != highspy.HighsModelStatus.kOptimal:
            name = self._solver.modelStatusToString(status)
            raise SolverError(f"HiGHS could not solve the LP relaxation (status {name})")
        solution = self._solver.getSolution()
        info = self._solver.getInfo()
        return LpSolution(
            x=np.array(solution.col_value),
            duals=np.array(solution.row_dual),
            objective=float(info.objective_function_value),
            iterations=int(info.simplex_iteration_count),
        )
