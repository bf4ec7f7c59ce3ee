"""HiGHS settings and column-wise model building shared by the VCG solvers.

The solver itself comes from `mercat.clearing.highs.new_solver` (silent, banner swallowed).
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from mercat.clearing.highs import new_solver, run
from mercat.errors import SolverError

INF = highspy.kHighsInf


def new_highs(time_limit: float | None = None, threads: int = 1) -> highspy.Highs:
    """A silent single-threaded HiGHS instance (exact MIP gaps: rel 0, abs 1e-9)."""
    h = new_solver(threads)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 1e-9)
    # The allocation checks allow 1e-9 of slack on a capacity; HiGHS's default 1e-6 would
    # let a MILP overfill a provider by more than that.
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    return h


@dataclass(frozen=True)
class MipAnswer:
    """What a MILP solve proved: best value and solution, dual bound, optimality."""

    value: float  # objective of the best solution (-inf when none was found)
    bound: float  # proven upper bound on the optimum (maximisation)
    x: np.ndarray  # column values of the best solution (empty when none)
    optimal: bool
    nodes: int


def pass_model(
    h: highspy.Highs,
    cost: np.ndarray,
    upper: np.ndarray,
    row_upper: np.ndarray,
    starts: np.ndarray,
    index: np.ndarray,
    value: np.ndarray,
    integer: bool,
) -> None:
    """Load max cost·x, A x ≤ row_upper, 0 ≤ x ≤ upper, A given column-wise (CSC)."""
    lp = highspy.HighsLp()
    lp.num_col_ = int(cost.shape[0])
    lp.num_row_ = int(row_upper.shape[0])
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.zeros(lp.num_col_)
    lp.col_upper_ = np.asarray(upper, dtype=np.float64)
    lp.row_lower_ = np.full(lp.num_row_, -INF)
    lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.asarray(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value, dtype=np.float64)
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * lp.num_col_
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the model")


def run_mip(h: highspy.Highs) -> MipAnswer:
    """Solve the loaded MILP; time-limited runs come back with their bound, not an error."""
    run(h)
    status = h.getModelStatus()
    info = h.getInfo()
    optimal = status == highspy.HighsModelStatus.kOptimal
    if not optimal and status not in (
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kInterrupt,
        highspy.HighsModelStatus.kSolutionLimit,
        highspy.HighsModelStatus.kIterationLimit,
    ):
        raise SolverError(f"HiGHS ended with status {h.modelStatusToString(status)}")
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.array(h.getSolution().col_value) if has_solution else np.zeros(0)
    value = float(info.objective_function_value) if has_solution else -np.inf
    bound = float(info.mip_dual_bound)
    if has_solution and not bound >= value:  # round-off, or no bound reported
        bound = value if optimal else np.inf
    return MipAnswer(value, bound, x, optimal, int(info.mip_node_count))
