"""Column generation for the standard auction's set-packing formulation.

Formulation. A *column* is a feasible filling of one provider: a provider j and a set S of
users with Σ_{i∈S} d_i ≤ C_j, worth v(S) = Σ_{i∈S} b_i d_i. The auction picks at most one
column per provider and serves every user at most once:

    max Σ_c v_c y_c   s.t.  Σ_{c∋i} y_c ≤ 1 (user i),  Σ_{c on j} y_c ≤ 1 (provider j),  y ∈ {0,1}.

Its LP relaxation is much tighter than the assignment MILP's, because each provider's
knapsack is solved exactly inside the columns (docs/vcg.md has measured gaps). There are
exponentially many columns, so the LP is solved over a growing pool.

Pricing. With user duals π ≥ 0, the best column of provider j is a 0/1 knapsack with
profits v_i - π_i and capacity C_j; z_j(π) denotes its value (≥ 0, the empty set). For any
π ≥ 0, L(π) = Σ_i π_i + Σ_j z_j(π) bounds the optimum from above (Lagrangian duality: the
pair (π, z(π)) is dual feasible for the LP over *all* columns). The knapsacks are solved
exactly (`knapsack.knapsack_max`), so every bound reported here is a proof.

Stabilisation (Wentges smoothing). Master duals jump between the vertices of a degenerate
dual polytope; pricing at π̃ = α·π_center + (1-α)·π_master, where π_center is the dual with
the best bound so far, steadies them. When π̃ prices out nothing that the master lacks (a
"mis-pricing"), the bound at π̃ still improves, and the next round prices at π_master.

Excluding a user (the W*_{-i} re-solves of the Clarke payments) sets its row's bound to 0 and
removes it from pricing: the pool is shared, columns holding the user simply stay at zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mercat.clearing.highs import run
from mercat.clearing.vcg.highs import new_highs, pass_model, run_mip
from mercat.clearing.vcg.instance import StandardAuction
from mercat.clearing.vcg.knapsack import DEFAULT_NODE_LIMIT, dantzig_bound, knapsack_max
from mercat.errors import SolverError
from mercat.market.model import capacity_limit

REDUCED_COST_TOL = 1e-9
CONVERGENCE_TOL = 1e-6
"""Column generation stops once bound - LP ≤ this, relative: the proof step works with any
duals (its bound is L(π), exact), so chasing the last digits of the LP buys nothing."""


class ColumnPool:
    """Provider fillings found so far, without duplicates (shared by every re-solve)."""

    def __init__(self, auction: StandardAuction) -> None:
        self.auction = auction
        self.providers: list[int] = []
        self.members: list[np.ndarray] = []
        self.values: list[float] = []
        self._known: dict[tuple[int, bytes], int] = {}

    def __len__(self) -> int:
        return len(self.providers)

    def add(self, provider: int, users: np.ndarray) -> int | None:
        """Add a column (users must fit the provider); its index, or None if already known."""
        users = np.sort(np.asarray(users, dtype=np.int64))
        key = (int(provider), users.tobytes())
        if key in self._known:
            return None
        if self.auction.demands[users].sum() > capacity_limit(self.auction.capacities[provider]):
            raise SolverError(f"column over capacity on provider {provider}")
        self._known[key] = len(self.providers)
        self.providers.append(int(provider))
        self.members.append(users)
        self.values.append(float(self.auction.values[users].sum()))
        return len(self.providers) - 1

    def index_of(self, provider: int, users: np.ndarray) -> int | None:
        key = (int(provider), np.sort(np.asarray(users, dtype=np.int64)).tobytes())
        return self._known.get(key)

    def add_assignment(self, assignment: np.ndarray) -> list[int]:
        """Add the columns of an assignment (one per used provider); their indices."""
        indices = []
        for j in np.unique(assignment[assignment >= 0]):
            users = np.flatnonzero(assignment == j)
            index = self.add(int(j), users)
            indices.append(self.index_of(int(j), users) if index is None else index)
        return indices

    def csc(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The master's matrix for some columns: user rows 0..n-1, provider rows n..n+m-1."""
        n = self.auction.n_users
        index_parts = [np.append(self.members[c], n + self.providers[c]) for c in columns]
        lengths = np.array([len(part) for part in index_parts], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        index = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.int64)
        return starts, index, np.ones(index.shape[0])


@dataclass(frozen=True)
class LagrangianCertificate:
    """Duals π and per-provider bounds z ≥ z_j(π): a proof that the optimum is ≤ bound."""

    pi: np.ndarray  # (n,) user duals, 0 for an excluded user
    z: np.ndarray  # (m,) upper bounds on each provider's best reduced-profit column
    bound: float  # Σ π + Σ z


@dataclass(frozen=True)
class ColGenResult:
    certificate: LagrangianCertificate  # the best (lowest) bound found
    lp_value: float  # restricted master LP value at the end
    converged: bool  # the master LP over the pool is optimal over all columns
    rounds: int
    seconds: float
    lp_solution: np.ndarray  # LP value of pool columns 0..len-1 at the last master solve


class MasterLP:
    """The restricted master LP over a pool, kept in one HiGHS instance and warm-started."""

    def __init__(self, pool: ColumnPool, excluded: int | None = None) -> None:
        auction = pool.auction
        self.pool = pool
        self.n, self.m = auction.n_users, auction.n_providers
        row_upper = np.ones(self.n + self.m)
        if excluded is not None:
            row_upper[excluded] = 0.0
        self.h = new_highs()
        empty = np.zeros(0)
        pass_model(self.h, empty, empty, row_upper, np.zeros(1), empty, empty, integer=False)
        self.synced = 0
        self.sync()

    def sync(self) -> None:
        """Load the pool's columns that the LP does not have yet."""
        new = np.arange(self.synced, len(self.pool))
        if new.shape[0] == 0:
            return
        starts, index, coef = self.pool.csc(new)
        cost = np.array([self.pool.values[c] for c in new])
        self.h.addCols(
            len(new),
            cost,
            np.zeros(len(new)),
            np.ones(len(new)),
            index.shape[0],
            starts[:-1].astype(np.int32),
            index.astype(np.int32),
            coef,
        )
        self.synced = len(self.pool)

    def solve(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """(value, π, μ, x) of the LP over the pool."""
        if self.synced == 0:  # HiGHS calls a model without columns "empty"
            return 0.0, np.zeros(self.n), np.zeros(self.m), np.zeros(0)
        run(self.h)
        status = self.h.getModelStatus()
        if status.name != "kOptimal":
            raise SolverError(f"master LP ended with status {self.h.modelStatusToString(status)}")
        solution = self.h.getSolution()
        duals = np.maximum(np.array(solution.row_dual), 0.0)  # ≤ rows of a max: π ≥ 0
        value = float(self.h.getInfo().objective_function_value)
        return value, duals[: self.n], duals[self.n :], np.array(solution.col_value)


def price(
    auction: StandardAuction,
    pi: np.ndarray,
    floors: np.ndarray,
    allowed: np.ndarray,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Best column per provider at duals π, of interest only above `floors`.

    Returns z_hat (z_hat_j ≥ z_j(π), exact whenever a column beats the floor) and, per
    provider, the users of its best column (None when nothing beats the floor).
    """
    users = np.flatnonzero(allowed)
    profits = auction.values[users] - pi[users]
    demands = auction.demands[users]
    z_hat = np.empty(auction.n_providers)
    columns: list[np.ndarray | None] = []
    for j in range(auction.n_providers):
        cap = float(auction.capacities[j])
        value, chosen, complete = knapsack_max(
            profits, demands, cap, floor=max(float(floors[j]), 0.0), node_limit=node_limit
        )
        found = chosen.shape[0] > 0
        if complete:
            z_hat[j] = value if found else max(float(floors[j]), 0.0)
        else:  # interrupted: fall back on the LP bound of this knapsack
            z_hat[j] = max(dantzig_bound(profits, demands, cap), value)
        columns.append(users[chosen] if found else None)
    return z_hat, columns


def column_generation(
    pool: ColumnPool,
    excluded: int | None = None,
    *,
    target_bound: float = -np.inf,
    alpha: float = 0.5,
    time_limit: float = 60.0,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> ColGenResult:
    """Solve the set-packing LP by column generation; stop early once bound ≤ target_bound.

    `target_bound` lets a caller with an incumbent of value LB stop as soon as the bound
    certifies the gap it wants (bound ≤ LB·(1 + gap)).
    """
    auction = pool.auction
    start = time.perf_counter()
    allowed = np.ones(auction.n_users, dtype=bool)
    if excluded is not None:
        allowed[excluded] = False
    master = MasterLP(pool, excluded)
    best: LagrangianCertificate | None = None
    lp = master.solve()
    at_master = True  # the first round prices at the master duals
    rounds = 0
    converged = False
    while True:
        rounds += 1
        lp_value, pi, mu, _ = lp
        if at_master or best is None:
            pi_t, floor_t = pi, mu
        else:
            pi_t = alpha * best.pi + (1.0 - alpha) * pi
            floor_t = alpha * best.z + (1.0 - alpha) * mu
        pi_t = np.where(allowed, pi_t, 0.0)
        z_hat, columns = price(auction, pi_t, floor_t, allowed, node_limit)
        bound = float(pi_t.sum() + z_hat.sum())
        if best is None or bound < best.bound:
            best = LagrangianCertificate(pi_t.copy(), z_hat, bound)
        added = 0
        for j, users in enumerate(columns):
            if users is None:
                continue
            reduced = float((auction.values[users] - pi[users]).sum() - mu[j])
            if reduced > REDUCED_COST_TOL and pool.add(j, users) is not None:
                added += 1
        if best.bound - lp_value <= CONVERGENCE_TOL * max(1.0, abs(lp_value)):
            converged = True
            break
        if best.bound <= target_bound or time.perf_counter() - start > time_limit:
            break
        if added == 0:
            if at_master:
                # Only an interrupted knapsack search (node limit) leaves a gap with nothing
                # to add: the bound stays the LP bound of those knapsacks.
                break
            at_master = True  # mis-pricing: the bound improved; price at the master next
            continue
        at_master = False
        master.sync()
        lp = master.solve()
    return ColGenResult(best, lp[0], converged, rounds, time.perf_counter() - start, lp[3])


def restricted_master_mip(
    pool: ColumnPool, excluded: int | None = None, time_limit: float = 10.0
) -> tuple[np.ndarray, float]:
    """Best assignment using pool columns only (a heuristic: its value is a lower bound)."""
    auction = pool.auction
    columns = np.array(
        [c for c in range(len(pool)) if excluded is None or excluded not in pool.members[c]],
        dtype=np.int64,
    )
    assignment = np.full(auction.n_users, -1, dtype=np.int64)
    if columns.shape[0] == 0:
        return assignment, 0.0
    starts, index, coef = pool.csc(columns)
    cost = np.array([pool.values[c] for c in columns])
    h = new_highs(time_limit=time_limit)
    row_upper = np.ones(auction.n_users + auction.n_providers)
    pass_model(h, cost, np.ones(len(columns)), row_upper, starts, index, coef, integer=True)
    answer = run_mip(h)
    for k in np.flatnonzero(answer.x > 0.5) if answer.x.shape[0] else []:
        c = columns[k]
        assignment[pool.members[c]] = pool.providers[c]
    return assignment, float(auction.values[assignment >= 0].sum())
