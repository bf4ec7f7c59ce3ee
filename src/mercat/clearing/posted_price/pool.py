"""The allocations of highest believed welfare, listed in order, with a bound on the rest.

Attempt 4's fast path (`posted_price_certificate`) answers a best response by pricing a short
list of allocations instead of solving a MILP, and proves the answer exact with a bound that
holds for every allocation left off the list. The list is V's top allocations by the
maker's believed welfare Ŵ: `NearOptimalPool` finds them one at a time (each a HiGHS solve
of max Ŵ(α) over V with a no-good cut for every allocation already listed) and keeps the
welfare of the best allocation not yet listed, `next_welfare`, which bounds Ŵ(α) for every
α off the list. Growing the list costs one MILP; reading it costs nothing.
"""

from __future__ import annotations

import math

from mercat.errors import SolverError
from mercat.market.constraints import MilpEncoding, Row
from mercat.market.economics import welfare
from mercat.market.model import Allocation, Market


class NearOptimalPool:
    """V's allocations in decreasing believed welfare, grown on demand."""

    def __init__(self, beliefs: Market, encoding: MilpEncoding) -> None:
        self.beliefs = beliefs
        self.encoding = encoding
        self.allocations: list[Allocation] = []
        self.welfares: list[float] = []
        self.solves = 0
        self._next: tuple[Allocation, float] | None = None
        self._exhausted = False
        self._cuts: list[Row] = []

    @property
    def next_welfare(self) -> float:
        """max Ŵ(α) over the allocations not listed yet (-inf once V is exhausted)."""
        self._find_next()
        return -math.inf if self._next is None else self._next[1]

    def grow(self) -> Allocation | None:
        """List the next allocation (None once V is exhausted)."""
        self._find_next()
        if self._next is None:
            return None
        allocation, value = self._next
        self.allocations.append(allocation)
        self.welfares.append(value)
        self._cut(allocation)
        self._next = None
        return allocation

    def _cut(self, allocation: Allocation) -> None:
        # Σ_{j ∈ α} (1 - x_j) + Σ_{j ∉ α} x_j ≥ 1 over the pair columns: α itself is excluded.
        chosen = {self.encoding.pair_columns[(t, n)] for t, n, _ in allocation.shares}
        coeffs = {j: (-1.0 if j in chosen else 1.0) for j in self.encoding.pair_columns.values()}
        self._cuts.append((coeffs, 1.0 - len(chosen), math.inf))

    def _find_next(self) -> None:
        if self._next is not None or self._exhausted:
            return
        from mercat.clearing.highs import solve_max

        enc = self.encoding
        if not enc.pair_columns and self.allocations:
            self._exhausted = True  # only the empty allocation exists, and it is listed
            return
        model = enc.extended(self._cuts) if self._cuts else enc
        self.solves += 1
        try:
            result = solve_max(model)
        except SolverError as exc:
            # Once every allocation is cut off, HiGHS reports the model infeasible.
            if self._cuts and "Infeasible" in str(exc):
                self._exhausted = True
                return
            raise
        if result.status == "Infeasible":
            self._exhausted = True
            return
        if not result.proven:
            raise SolverError(f"HiGHS did not prove the next allocation (status {result.status})")
        allocation = enc.decode(result.x, self.beliefs)
        self._next = (allocation, welfare(self.beliefs, allocation))
