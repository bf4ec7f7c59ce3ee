"""Reduced-cost fixing: an exact MILP solve made small by a bound and a known good point.

For max c·x over {l ≤ x ≤ u, r_lo ≤ A·x ≤ r_hi}, any row multipliers y give, with the
reduced costs d = c - Aᵀy,

    c·x = y·(A·x) + d·x
        ≤ Σ_{y_i > 0} y_i·r_hi,i + Σ_{y_i < 0} y_i·r_lo,i + Σ_j max(d_j·l_j, d_j·u_j) = U

for every x in the box that meets the rows (weak duality; `lagrangian_bound`). The bound
holds for any y, so it does not rest on the LP solver's optimality or sign conventions:
a multiplier whose row bound is infinite on its side is set to 0, which keeps U valid. An x
with x_j at the other end of its range than the one maximising d_j·x_j earns at most
U - |d_j|·(u_j - l_j). So when a feasible point of value L is known, every integral column
j with U - |d_j|·(u_j - l_j) < L - `FIX_MARGIN` takes its maximising end in every solution
of value at least L - `FIX_MARGIN`, the optimum included (`fix_columns`): the MILP restricted
to those columns has the same optimum, and usually far fewer columns to branch on. If U
itself is at most L, nothing beats the known point and no MILP is needed at all.

U is the LP bound when y is an optimal dual of the LP relaxation, and it is only as tight
as that relaxation; the fixing is only as strong as U - L is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mercat.market.constraints import MilpEncoding

FIX_MARGIN = 1e-6
"""Solutions up to this much below the known value survive the fixing (against rounding in U)."""


@dataclass(frozen=True)
class LagrangianBound:
    """U and the reduced costs d = c - Aᵀy it was computed from."""

    value: float
    reduced: np.ndarray


def lagrangian_bound(model: MilpEncoding, duals: np.ndarray) -> LagrangianBound:
    """An upper bound on max c·x over the model's LP relaxation, from any row multipliers."""
    y = np.asarray(duals, dtype=float)
    upper_ok = np.isfinite(model.row_upper)
    lower_ok = np.isfinite(model.row_lower)
    y = np.where((y > 0) & ~upper_ok, 0.0, y)
    y = np.where((y < 0) & ~lower_ok, 0.0, y)
    reduced = model.objective - model.matrix.T @ y
    rows = np.where(y > 0, y * np.where(upper_ok, model.row_upper, 0.0), 0.0)
    rows += np.where(y < 0, y * np.where(lower_ok, model.row_lower, 0.0), 0.0)
    with np.errstate(invalid="ignore"):  # 0·inf: a column whose reduced cost is exactly 0
        columns = np.where(
            reduced > 0,
            reduced * model.col_upper,
            np.where(reduced < 0, reduced * model.col_lower, 0.0),
        )
    return LagrangianBound(float(np.sum(rows) + np.sum(columns)), reduced)


def fix_columns(
    model: MilpEncoding, bound: LagrangianBound, known: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Column bounds of the restricted model (integral columns fixed where the bound allows,
    given a feasible point of value `known`) and how many columns were fixed."""
    lower, upper = model.col_lower.copy(), model.col_upper.copy()
    if not np.isfinite(bound.value):
        return lower, upper, 0
    d = bound.reduced
    with np.errstate(invalid="ignore"):
        loss = np.abs(d) * (upper - lower)
    fixed = (
        model.integral & (d != 0) & np.isfinite(loss) & (bound.value - loss < known - FIX_MARGIN)
    )
    up = fixed & (d > 0)
    down = fixed & (d < 0)
    lower[up] = upper[up]
    upper[down] = lower[down]
    return lower, upper, int(np.count_nonzero(fixed))


__all__ = ["FIX_MARGIN", "LagrangianBound", "fix_columns", "lagrangian_bound"]
