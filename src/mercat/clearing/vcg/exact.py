"""Proving the welfare optimum: reduced-cost column enumeration and a packing search.

Column generation (`vcg_colgen`) ends with duals π and a bound L = Σ π + Σ_j z_j(π) ≥ OPT,
where z_j is provider j's best reduced profit, here solved exactly again. Any assignment
is a set of columns S_j, one per used provider, and its welfare W satisfies

    L - W = Σ_j (z_j - rp_j(S_j)) + Σ_{i unserved} π_i,   rp_j(S) = Σ_{i∈S} (v_i - π_i),

a sum of non-negative terms (its *waste*). So an assignment worth at least L - δ uses only
columns whose own waste z_j - rp_j(S) is at most δ. The proof lists every such column per
provider (an enumerating knapsack search, `knapsack.knapsack_enumerate_csr`) and finds the
least-waste packing of the list (`vcg_packing.min_waste_packing`, capped at δ). A packing
found is optimal: every assignment missing from the list wastes more than δ. None found
means the optimum wastes more than δ: δ doubles and the round repeats, until δ reaches the
waste of the best known assignment, which is then optimal. δ starts tiny because the
column lists grow steeply with δ, and the optimum's waste is usually well below the
incumbent's.

"Proven" means exact up to the tolerances of the parts: profits compared at 1e-10 in the
knapsack searches, 1e-9 on the waste, capacities held to `capacity_limit` (1e-9 of slack,
relative above 1) like every mechanism.

When a list would exceed `max_columns`, a search its node limit, or the clock its deadline,
the proof stops; the answer is the best assignment found (the longest complete list is
searched once more for a better packing) with the bound L: a certified gap, not an optimum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mercat.clearing.vcg.colgen import (
    ColumnPool,
    LagrangianCertificate,
    column_generation,
    restricted_master_mip,
)
from mercat.clearing.vcg.instance import StandardAuction
from mercat.clearing.vcg.knapsack import knapsack_enumerate_csr, knapsack_max
from mercat.clearing.vcg.packing import ColumnList, min_waste_packing

OPTIMALITY_TOL = 1e-9
DELTA_GROWTH = 2.0


@dataclass(frozen=True)
class WelfareSolution:
    """An assignment with a proven upper bound on the optimum (of the market without
    `excluded`, when set)."""

    assignment: np.ndarray  # provider per user, -1 unserved
    welfare: float
    bound: float
    proven_optimal: bool
    excluded: int | None
    stats: dict[str, float]

    @property
    def gap(self) -> float:
        """Relative gap (bound - welfare) / bound, 0 for an empty market."""
        return 0.0 if self.bound <= 0 else max(0.0, (self.bound - self.welfare) / self.bound)


def sequential_knapsacks(auction: StandardAuction, allowed: np.ndarray) -> np.ndarray:
    """A good assignment fast: fill providers one by one, largest first, each by an exact
    knapsack over the users still free. Returns the assignment."""
    assignment = np.full(auction.n_users, -1, dtype=np.int64)
    free = allowed.copy()
    for j in np.argsort(-auction.capacities, kind="stable"):
        users = np.flatnonzero(free)
        if users.shape[0] == 0:
            break
        _, chosen, _ = knapsack_max(
            auction.values[users],
            auction.demands[users],
            float(auction.capacities[j]),
            node_limit=200_000,
        )
        assignment[users[chosen]] = j
        free[users[chosen]] = False
    return assignment


def lp_rounding(
    pool: ColumnPool, lp_solution: np.ndarray, pi: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """An assignment from the master LP: its columns by decreasing LP value while they fit
    together, then each provider left empty filled by a knapsack on reduced profits v - π
    over the free users, then every provider's spare capacity by one on values."""
    auction = pool.auction
    assignment = np.full(auction.n_users, -1, dtype=np.int64)
    for c in np.argsort(-lp_solution, kind="stable"):
        if lp_solution[c] <= 1e-6:
            break
        provider, users = pool.providers[c], pool.members[c]
        if np.any(assignment == provider) or np.any(assignment[users] >= 0):
            continue
        if np.all(allowed[users]):
            assignment[users] = provider
    for profits in (auction.values - pi, auction.values):
        for j in np.argsort(-auction.capacities, kind="stable"):
            if profits is not auction.values and np.any(assignment == j):
                continue
            free = np.flatnonzero((assignment < 0) & allowed)
            spare = float(auction.capacities[j] - auction.demands[assignment == j].sum())
            if free.shape[0] == 0 or spare <= 0:
                continue
            _, chosen, _ = knapsack_max(
                profits[free], auction.demands[free], spare, node_limit=200_000
            )
            assignment[free[chosen]] = j
    return assignment


def exact_certificate(
    auction: StandardAuction,
    pi: np.ndarray,
    allowed: np.ndarray,
    node_limit: int,
    deadline: float = np.inf,
) -> LagrangianCertificate | None:
    """L(π) with every z_j solved exactly (the tightest proof these duals give), or None
    when a knapsack search hit its node limit."""
    users = np.flatnonzero(allowed)
    profits = auction.values[users] - pi[users]
    z = np.empty(auction.n_providers)
    for j in range(auction.n_providers):
        value, _, complete = knapsack_max(
            profits, auction.demands[users], float(auction.capacities[j]), node_limit=node_limit
        )
        if not complete or time.perf_counter() > deadline:
            return None
        z[j] = value
    return LagrangianCertificate(pi, z, float(pi[users].sum() + z.sum()))


def enumerate_columns(
    auction: StandardAuction,
    certificate: LagrangianCertificate,
    allowed: np.ndarray,
    delta: float,
    max_columns: int,
    node_limit: int,
    deadline: float = np.inf,
) -> ColumnList | None:
    """Every non-empty column with reduced gap ≤ δ, or None if there are more than
    max_columns (or a search hit its node limit)."""
    reduced = auction.values - certificate.pi
    # A user of reduced profit below -δ is in no such column: dropping it would gain > δ.
    users = np.flatnonzero(allowed & (reduced >= -delta - OPTIMALITY_TOL))
    parts: list[ColumnList] = []
    count = 0
    for j in range(auction.n_providers):
        items, starts, complete = knapsack_enumerate_csr(
            reduced[users],
            auction.demands[users],
            float(auction.capacities[j]),
            threshold=float(certificate.z[j]) - delta - OPTIMALITY_TOL,
            max_subsets=max_columns - count + 1,
            node_limit=node_limit,
        )
        if not complete or time.perf_counter() > deadline:
            return None
        if len(starts) > 1 and starts[1] == 0:
            starts = starts[1:]  # the empty set (listed first when it qualifies) is no column
        size = len(starts) - 1
        parts.append(ColumnList(np.full(size, j, dtype=np.int64), starts, users[items]))
        count += size
    return ColumnList.concat(parts)


def _assignment_of(n_users: int, columns: ColumnList, chosen: np.ndarray) -> np.ndarray:
    assignment = np.full(n_users, -1, dtype=np.int64)
    for c in chosen:
        if c >= 0:
            assignment[columns.members(int(c))] = columns.providers[c]
    return assignment


def prove_optimum(
    auction: StandardAuction,
    certificate: LagrangianCertificate,
    allowed: np.ndarray,
    incumbent: np.ndarray,
    *,
    deadline: float,
    max_columns: int,
    node_limit: int,
    stats: dict[str, float],
) -> tuple[np.ndarray, bool]:
    """Search for an assignment better than `incumbent` until one is proven optimal.

    Returns (best assignment, proven). δ starts small and doubles: each round lists the
    columns within δ and runs the waste search (`vcg_packing`) capped at δ; a packing found
    is optimal, none found means the optimum wastes more than δ (see the module docstring).
    """
    bound = certificate.bound
    best = incumbent
    budget = bound - float(auction.values[best >= 0].sum())  # the incumbent's waste
    delta = min(budget, max(1e-6 * bound, 1e-9))
    pi = np.where(allowed, certificate.pi, 0.0)
    reduced = auction.values - pi
    last: tuple[ColumnList, np.ndarray] | None = None  # the longest complete list so far

    def give_up() -> tuple[np.ndarray, bool]:
        # No proof; the longest complete list still holds good columns: the best packing of
        # them that beats the incumbent (within a node budget) is a better assignment.
        if last is not None:
            found, chosen, _, nodes = min_waste_packing(
                last[0], last[1], certificate.z, pi, budget, node_limit=node_limit // 10
            )
            stats["packing_nodes"] = stats.get("packing_nodes", 0.0) + nodes
            if found < budget:
                return _assignment_of(auction.n_users, last[0], chosen), False
        return best, False

    while True:
        columns = enumerate_columns(
            auction, certificate, allowed, delta, max_columns, node_limit, deadline
        )
        stats["delta"] = delta
        stats["enumerated_columns"] = float(-1 if columns is None else len(columns))
        if columns is None:
            return give_up()
        gained = (
            np.add.reduceat(reduced[columns.items], columns.starts[:-1])
            if len(columns)
            else np.zeros(0)
        )
        waste = np.maximum(certificate.z[columns.providers] - gained, 0.0)
        last = (columns, waste)
        cap = min(budget, delta + OPTIMALITY_TOL)
        found, chosen, complete, nodes = min_waste_packing(
            columns, waste, certificate.z, pi, cap, node_limit=node_limit
        )
        stats["packing_nodes"] = stats.get("packing_nodes", 0.0) + nodes
        if not complete:
            return give_up()
        if found < cap:  # the least waste among all assignments within δ: optimal
            return _assignment_of(auction.n_users, columns, chosen), True
        if delta >= budget:  # nothing beats the incumbent's waste: it is optimal
            return best, True
        if time.perf_counter() > deadline:
            return give_up()
        delta = min(DELTA_GROWTH * delta, budget)


def solve_welfare(
    pool: ColumnPool,
    excluded: int | None = None,
    *,
    incumbent: np.ndarray | None = None,
    target_gap: float = 0.0,
    time_limit: float = 60.0,
    max_columns: int = 200_000,
    node_limit: int = 20_000_000,
) -> WelfareSolution:
    """Welfare-maximising assignment of the pool's auction (without `excluded`).

    `target_gap` 0 asks for a proven optimum; a positive relative gap stops as soon as the
    bound certifies it (the n = 1000 setting). `incumbent` is a known feasible assignment
    (it must not serve `excluded`). New columns found on the way join the shared pool.
    Whatever happens, the answer carries a valid bound: unproven answers have a gap.
    """
    auction = pool.auction
    start = time.perf_counter()
    deadline = start + time_limit
    allowed = np.ones(auction.n_users, dtype=bool)
    if excluded is not None:
        allowed[excluded] = False
    candidates = [sequential_knapsacks(auction, allowed)]
    if incumbent is not None:
        candidates.append(np.asarray(incumbent, dtype=np.int64))
    best = max(candidates, key=lambda a: auction.values[a >= 0].sum())
    for candidate in candidates:
        pool.add_assignment(candidate)

    def value(assignment: np.ndarray) -> float:
        return float(auction.values[assignment >= 0].sum())

    colgen = column_generation(
        pool,
        excluded,
        target_bound=value(best) * (1.0 + target_gap),
        time_limit=max(time_limit * 0.5, 1e-3),
        node_limit=node_limit,
    )
    stats = {
        "colgen_rounds": float(colgen.rounds),
        "colgen_seconds": colgen.seconds,
        "pool_columns": float(len(pool)),
        "lp_value": colgen.lp_value,
    }
    bound = colgen.certificate.bound
    rounded = lp_rounding(pool, colgen.lp_solution, colgen.certificate.pi, allowed)
    if value(rounded) > value(best):
        best = rounded

    def improve_by_pool_mip() -> None:
        # The best assignment of pool columns (HiGHS): a heuristic, worth its time only
        # when no proof will come (the proof finds optimal assignments itself).
        nonlocal best
        remaining = deadline - time.perf_counter()
        rmp, rmp_value = restricted_master_mip(
            pool, excluded, time_limit=max(min(remaining * 0.2, 5.0), 1e-3)
        )
        if rmp_value > value(best):
            best = rmp

    def done(proven: bool) -> WelfareSolution:
        stats["seconds"] = time.perf_counter() - start
        welfare = value(best)
        return WelfareSolution(
            best, welfare, welfare if proven else max(bound, welfare), proven, excluded, stats
        )

    if bound - value(best) <= OPTIMALITY_TOL * max(1.0, bound):
        return done(True)
    if bound <= value(best) * (1.0 + target_gap):
        return done(False)
    if target_gap > 0:
        improve_by_pool_mip()
        if bound <= value(best) * (1.0 + target_gap):
            return done(False)
    exact = exact_certificate(auction, colgen.certificate.pi, allowed, node_limit, deadline)
    if exact is None:
        improve_by_pool_mip()
        return done(False)
    bound = min(bound, exact.bound)
    best, proven = prove_optimum(
        auction,
        exact,
        allowed,
        best,
        deadline=deadline,
        max_columns=max_columns,
        node_limit=node_limit,
        stats=stats,
    )
    if not proven:
        improve_by_pool_mip()
    return done(proven)
