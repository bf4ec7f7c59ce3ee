"""Odd-cycle rows for a sequence of challenge LPs, kept to the ones that work.

At 1000 requests × 100 nodes a challenge MILP is mostly a maximum-weight stable set over
the market conflicts, and the edge rows leave its LP bound 1-3 above the optimum: HiGHS
then spends 5-250 s on each challenge proving it. The odd-cycle rows Σ_{t∈C} s_t ≤
(|C|-1)/2 that a challenge's LP optimum violates (`PlacementSolver.odd_cycle_cuts`) close
most of that gap (on captured challenges: from 1.7 to 0.06). They hold on every
allocation, whatever the objective, so a row found for one challenge is valid for every
later one. Kept blindly in every later LP and MILP they pile up: at 1000 × 100 that made
turns 17-26 of the dynamics 1.5-2× slower (docs/posted-price.md).

`CycleRows` is the usual cut management of branch-and-cut codes:

- every row ever found stays in the pool (`rows`); a few are *active*, in the LP;
- before separating afresh, the LP optimum is checked against the pool's inactive rows
  (one sparse product), and the violated ones come back;
- an active row whose dual has been zero for `RETIRE_AFTER` LPs in a row leaves the LP
  (it stays in the pool);
- the bound and the fixing use every active row; the MILP may carry those that bind
  (nonzero dual), which `challenge.CYCLE_ROWS_IN_MILP` decides.

Which rows are active changes the speed, never the answer: every row holds on V.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mercat.market.constraints import Row, rows_matrix
from mercat.market.odd_cycles import VIOLATION

RETIRE_AFTER = 3
"""An active row leaves the LP after its dual has been zero in this many LPs in a row."""

BINDING = 1e-9
"""A row binds in an LP when its dual is larger than this in magnitude."""


class CycleRows:
    """The pool of odd-cycle rows over one model's columns and which of them are active."""

    def __init__(self, num_cols: int, separate: Callable[[np.ndarray], list[Row]]) -> None:
        self.num_cols = num_cols
        self.separate = separate  # the rows a point violates, found afresh
        self.rows: list[Row] = []  # every row found, in order found
        self.active: list[int] = []  # pool indices of the rows in the LP, in the LP's order
        self._idle: dict[int, int] = {}  # active row -> LPs in a row it has not bound in
        self._matrix = rows_matrix([], num_cols)
        self._upper = np.zeros(0)
        self.found = 0  # rows separated afresh
        self.revived = 0  # inactive pool rows brought back by a violation
        self.retired = 0  # rows taken out of the LP

    def violated(self, x: np.ndarray) -> list[int]:
        """Pool indices of the rows `x` violates that are not in the LP: inactive pool rows
        first; when none, rows separated afresh (added to the pool). Each becomes active."""
        if len(self.rows) > self._matrix.shape[0]:
            self._matrix = rows_matrix(self.rows, self.num_cols)
            self._upper = np.array([hi for _, _, hi in self.rows])
        if len(self.rows):
            excess = self._matrix @ x[: self.num_cols] - self._upper
            excess[self.active] = -np.inf
            revived = np.nonzero(excess > VIOLATION)[0].tolist()
            if revived:
                self.revived += len(revived)
                return self._activate(revived)
        new = self.separate(x)
        self.found += len(new)
        first = len(self.rows)
        self.rows += new
        return self._activate(list(range(first, len(self.rows))))

    def _activate(self, indices: list[int]) -> list[int]:
        self.active += indices
        for k in indices:
            self._idle[k] = 0
        return indices

    def binding(self, duals: np.ndarray) -> list[int]:
        """The active rows that bind, given their duals (in the order of `active`)."""
        return [k for k, y in zip(self.active, duals, strict=True) if abs(y) > BINDING]

    def retire(self, duals: np.ndarray) -> list[int]:
        """Count another LP (the active rows' duals, in the order of `active`); take the
        rows idle for `RETIRE_AFTER` LPs out of `active` and answer their positions in it."""
        leaving = []
        for position, (k, y) in enumerate(zip(self.active, duals, strict=True)):
            self._idle[k] = 0 if abs(y) > BINDING else self._idle[k] + 1
            if self._idle[k] >= RETIRE_AFTER:
                leaving.append(position)
        for position in reversed(leaving):
            del self._idle[self.active.pop(position)]
        self.retired += len(leaving)
        return leaving

    def statistics(self) -> dict[str, int]:
        return {
            "cycle_rows_found": self.found,
            "cycle_rows_active": len(self.active),
            "cycle_rows_revived": self.revived,
            "cycle_rows_retired": self.retired,
        }


__all__ = ["BINDING", "RETIRE_AFTER", "CycleRows"]
