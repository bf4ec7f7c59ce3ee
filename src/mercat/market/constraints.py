"""The validity set V of seed 001: which allocations a market allows.

An allocation α is valid (α ∈ V) when
1. it names only the market's requests and nodes, with shares in (0, 1];
2. replicas: an indivisible request is served by exactly `replicas` distinct nodes, each in
   full (share 1), or by none; a divisible request's shares sum to at most 1;
3. capability: every node that serves a request offers all of the request's capabilities;
4. capacity: on every node and resource, Σ_t share(t, n)·demand_t[r] ≤ capacity_n[r], up to
   the one slack every mechanism allows (`mercat.market.model.capacity_limit`);
5. conflicts: two requests in a "node" conflict never share a node; of two requests in a
   "market" conflict at most one is served; of a group of exclusive nodes at most one is
   used.

`is_valid` checks these and says why an allocation fails; `encode` writes the same set as
the feasible set of a mixed-integer linear program (`MilpEncoding`), which the optimiser,
the VCG reference and anyone else who needs "max something over V" solve.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from mercat.market.model import (
    FEASIBILITY_TOL,
    Allocation,
    Market,
    Node,
    Request,
    capacity_limit,
)

# --- what an allocation does to the market ---------------------------------------------


def served_fraction(market: Market, allocation: Allocation, request_id: str) -> float:
    """How much of request t is served: Σ_n share(t, n) / replicas (1 for a served
    indivisible request, 0 for an unserved one)."""
    request = market.request(request_id)
    return sum(allocation.shares_of(request_id).values()) / request.replicas


def node_load(market: Market, allocation: Allocation, node_id: str) -> tuple[float, ...]:
    """Resources node n spends: Σ_t share(t, n)·demand_t, one entry per market resource."""
    load = [0.0] * len(market.resources)
    for request_id, share in allocation.shares_on(node_id).items():
        demand = market.request(request_id).demand
        for r, d in enumerate(demand):
            load[r] += share * d
    return tuple(load)


def can_serve(node: Node, request: Request) -> bool:
    """Capability (and, for a whole replica, capacity) lets node n run request t alone."""
    return request.capabilities <= node.capabilities


# --- the checker -----------------------------------------------------------------------


@dataclass(frozen=True)
class Validity:
    """The verdict of `is_valid`: true when `reasons` is empty."""

    reasons: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.reasons


def is_valid(market: Market, allocation: Allocation) -> Validity:
    """Whether α ∈ V, with one human-readable reason per violated constraint.

    Loads are held to `capacity_limit` (the rule every mechanism shares); a divisible
    request may be served up to 1 + FEASIBILITY_TOL times over and an indivisible share may
    differ from 1 by FEASIBILITY_TOL (solvers return fractions up to their tolerance)."""
    tol = FEASIBILITY_TOL
    reasons: list[str] = []
    requests, nodes = market.request_by_id, market.node_by_id
    for t, n, _ in allocation.shares:
        if t not in requests:
            reasons.append(f"unknown request {t!r}")
        if n not in nodes:
            reasons.append(f"unknown node {n!r}")
    if reasons:
        return Validity(tuple(dict.fromkeys(reasons)))

    for request_id in sorted(allocation.served_requests):
        request = requests[request_id]
        shares = allocation.shares_of(request_id)
        if market.divisible:
            total = sum(shares.values())
            if total > 1 + tol:
                reasons.append(f"request {request_id!r} is served {total:.6g} > 1 times over")
        else:
            partial = sorted(n for n, f in shares.items() if abs(f - 1) > tol)
            if partial:
                reasons.append(
                    f"request {request_id!r} is indivisible but has partial shares on {partial}"
                )
            if len(shares) != request.replicas:
                reasons.append(
                    f"request {request_id!r} needs {request.replicas} distinct nodes, "
                    f"got {len(shares)}"
                )
        for node_id in sorted(shares):
            missing = request.capabilities - nodes[node_id].capabilities
            if missing:
                reasons.append(
                    f"node {node_id!r} lacks capabilities {sorted(missing)} "
                    f"needed by request {request_id!r}"
                )

    for node_id in sorted(allocation.used_nodes):
        load = node_load(market, allocation, node_id)
        for r, (used, cap) in enumerate(zip(load, nodes[node_id].capacity, strict=True)):
            if used > capacity_limit(cap):
                reasons.append(
                    f"node {node_id!r} exceeds its {market.resources[r]} capacity: "
                    f"{used:.6g} > {cap:.6g}"
                )

    used = allocation.used_nodes
    for group in market.exclusive_nodes:
        busy = [n for n in group if n in used]
        if len(busy) > 1:
            reasons.append(f"exclusive nodes {busy} are used together (at most one may be)")

    served = allocation.served_requests
    for c in market.conflicts:
        if c.scope == "market":
            if c.first in served and c.second in served:
                reasons.append(f"conflicting requests {c.first!r} and {c.second!r} are both served")
        else:
            shared = allocation.nodes_of(c.first) & allocation.nodes_of(c.second)
            if shared:
                reasons.append(
                    f"conflicting requests {c.first!r} and {c.second!r} "
                    f"share nodes {sorted(shared)}"
                )
    return Validity(tuple(reasons))


# --- the MILP encoding -----------------------------------------------------------------


Row = tuple[dict[int, float], float, float]
"""A linear row: {column: coefficient}, lower bound, upper bound."""


def rows_matrix(rows: Sequence[Row], num_cols: int) -> sparse.csr_array:
    """The rows' coefficients as a CSR matrix of `num_cols` columns."""
    indptr, indices, data = [0], [], []
    for coeffs, _, _ in rows:
        for j, v in sorted(coeffs.items()):
            indices.append(j)
            data.append(v)
        indptr.append(len(indices))
    return sparse.csr_array(
        (np.array(data, dtype=float), np.array(indices, dtype=np.int64), np.array(indptr)),
        shape=(len(rows), num_cols),
    )


@dataclass(frozen=True)
class MilpEncoding:
    """V as {x : row_lower ≤ A·x ≤ row_upper, col_lower ≤ x ≤ col_upper, x_j integral where
    `integral[j]`}, with `objective`·x + 0 equal to the welfare W(α) of the decoded α.

    Columns:
    - `pair_columns[(t, n)]`: share(t, n) (binary when indivisible, in [0, 1] when divisible),
      only for pairs where n offers t's capabilities and one replica fits n's capacity;
    - `served_columns[t]`: served fraction of t (binary when indivisible);
    - `used_columns[n]`: 1 if n serves anything (only for nodes with a fixed cost, which it
      prices, or in an exclusive group, which it limits);
    - `indicators[b]`: in divisible markets, a binary b that is 1 whenever one of the listed
      (continuous) columns is positive; conflicts are written on these.
    """

    objective: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integral: np.ndarray
    matrix: sparse.csr_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    pair_columns: dict[tuple[str, str], int]
    served_columns: dict[str, int]
    used_columns: dict[str, int]
    indicators: dict[int, tuple[int, ...]]
    divisible: bool

    @property
    def num_cols(self) -> int:
        return len(self.objective)

    def extended(
        self,
        rows: Sequence[Row],
        *,
        objective: Sequence[float] | None = None,
        col_lower: Sequence[float] | None = None,
        col_upper: Sequence[float] | None = None,
        integral: Sequence[bool] | None = None,
    ) -> MilpEncoding:
        """This model with `rows` appended and, for models that add columns, the whole new
        column list (objective, bounds, integrality: the old columns first, in order). The
        decoding maps stay valid: they name only the old columns."""
        objective = self.objective if objective is None else np.asarray(objective, dtype=float)
        num_cols = len(objective)
        old = sparse.csr_array(
            (self.matrix.data, self.matrix.indices, self.matrix.indptr),
            shape=(self.num_rows, num_cols),
        )
        return dataclasses.replace(
            self,
            objective=objective,
            col_lower=self.col_lower if col_lower is None else np.asarray(col_lower, float),
            col_upper=self.col_upper if col_upper is None else np.asarray(col_upper, float),
            integral=self.integral if integral is None else np.asarray(integral, dtype=bool),
            matrix=sparse.vstack([old, rows_matrix(rows, num_cols)], format="csr"),
            row_lower=np.concatenate([self.row_lower, [lo for _, lo, _ in rows]]),
            row_upper=np.concatenate([self.row_upper, [hi for _, _, hi in rows]]),
        )

    @property
    def num_rows(self) -> int:
        return len(self.row_lower)

    def decode(self, x: np.ndarray, market: Market) -> Allocation:
        """The allocation a (near-)feasible solution vector stands for.

        Indivisible: share 1 where x > 0.5. Divisible: the fractions, clipped to [0, 1]; on a
        node loaded past the middle of its slack (the LP may use the slack up to
        `capacity_limit`, and its own tolerance beyond), the shares of lowest value per unit
        are cut until the load is back at the middle.
        """
        x = np.asarray(x, dtype=float)
        if not self.divisible:
            return Allocation(
                tuple((t, n, 1.0) for (t, n), j in self.pair_columns.items() if x[j] > 0.5)
            )
        shares: dict[str, dict[str, float]] = {}
        for (t, n), j in self.pair_columns.items():
            f = min(1.0, float(x[j]))
            if f > FEASIBILITY_TOL:
                shares.setdefault(n, {})[t] = f
        # Served fractions above 1 by solver tolerance: scale the request down.
        totals: dict[str, float] = {}
        for row in shares.values():
            for t, f in row.items():
                totals[t] = totals.get(t, 0.0) + f
        for row in shares.values():
            for t in row:
                if totals[t] > 1.0:
                    row[t] /= totals[t]
        for n, row in shares.items():
            for r, cap in enumerate(market.node(n).capacity):
                used = sum(f * market.request(t).demand[r] for t, f in row.items())
                # The LP may use the slack up to `capacity_limit` (the one capacity rule), and
                # stops exactly on its row's bound, where a load is over it or not by rounding
                # (the checker adds the same shares in another order). A load past the middle
                # of the slack is brought back to it, and only the requests of lowest value
                # per unit of the resource give way (in value order, as the LP would have cut
                # them), so no welfare below the bare capacity's optimum is given up.
                if not math.isfinite(cap):
                    continue
                target = cap + (capacity_limit(cap) - cap) / 2
                if used <= target:
                    continue
                excess = used - target
                users = sorted(
                    (t for t in row if market.request(t).demand[r] > 0),
                    key=lambda t: market.request(t).value / market.request(t).demand[r],
                )
                for t in users:
                    demand = market.request(t).demand[r]
                    cut = min(row[t], excess / demand)
                    row[t] -= cut
                    excess -= cut * demand
                    if excess <= 0:
                        break
            for t in [t for t, f in row.items() if f <= FEASIBILITY_TOL]:
                del row[t]
        return Allocation(tuple((t, n, f) for n, row in shares.items() for t, f in row.items()))

    def encode_allocation(self, allocation: Allocation, market: Market) -> np.ndarray:
        """The column vector of an allocation (the inverse of `decode` on valid allocations;
        pairs the encoding left out, and partial replica sets, give an infeasible point)."""
        x = np.zeros(self.num_cols)
        for t, n, f in allocation.shares:
            x[self.pair_columns[(t, n)]] = f
        for t, j in self.served_columns.items():
            x[j] = served_fraction(market, allocation, t)
        for n, j in self.used_columns.items():
            x[j] = 1.0 if allocation.requests_on(n) else 0.0
        for b, watched in self.indicators.items():
            x[b] = 1.0 if any(x[j] > 0 for j in watched) else 0.0
        return x


def fits_alone(node: Node, request: Request) -> bool:
    """Whether one full replica of the request fits in the node's capacity (`capacity_limit`)."""
    return all(d <= capacity_limit(c) for d, c in zip(request.demand, node.capacity, strict=True))


def capacity_row(demands: dict[int, float], limit: float) -> Row | None:
    """Σ_j demand_j·x_j ≤ limit, divided by s = max(limit, largest demand); None when every
    column fits at once (the row could never bind).

    Scaled, every coefficient is at most 1 and the bound at most 1 (exactly 1 in an
    indivisible market, where a pair exists only if its demand is within the limit), so a
    demand of 1e-10 on a node of capacity 0 is 0.1 of the row, not a coefficient HiGHS
    refuses, and HiGHS's absolute feasibility tolerance means the same relative slack on
    every node."""
    positive = {j: d for j, d in demands.items() if d > 0}
    if not positive or sum(positive.values()) <= limit:
        return None
    scale = max(limit, max(positive.values()))
    return ({j: d / scale for j, d in positive.items()}, -math.inf, limit / scale)


def encode(market: Market) -> MilpEncoding:
    """Write V (and W as the objective, to maximise) as a MILP."""
    lower: list[float] = []
    upper: list[float] = []
    integral: list[bool] = []
    objective: list[float] = []

    def column(lo: float, hi: float, is_int: bool, obj: float) -> int:
        lower.append(lo)
        upper.append(hi)
        integral.append(is_int)
        objective.append(obj)
        return len(lower) - 1

    rows: list[Row] = []
    divisible = market.divisible
    binary_shares = not divisible

    pair: dict[tuple[str, str], int] = {}
    of_request: dict[str, list[int]] = {t.id: [] for t in market.requests}
    of_node: dict[str, dict[str, int]] = {n.id: {} for n in market.nodes}
    for t in market.requests:
        for n in market.nodes:
            if not can_serve(n, t):
                continue
            if not divisible and not fits_alone(n, t):
                continue
            unit = sum(c * d for c, d in zip(n.unit_costs, t.demand, strict=True))
            j = column(0.0, 1.0, binary_shares, -unit)
            pair[(t.id, n.id)] = j
            of_request[t.id].append(j)
            of_node[n.id][t.id] = j

    served: dict[str, int] = {}
    for t in market.requests:
        served[t.id] = column(0.0, 1.0, binary_shares, t.value)
        # Σ_n share(t, n) = replicas · served(t)
        coeffs = dict.fromkeys(of_request[t.id], 1.0)
        coeffs[served[t.id]] = -float(t.replicas)
        rows.append((coeffs, 0.0, 0.0))

    used: dict[str, int] = {}
    grouped = {nid for group in market.exclusive_nodes for nid in group}
    for n in market.nodes:
        on_node = of_node[n.id]
        if (n.cost > 0 or n.id in grouped) and on_node:
            used[n.id] = column(0.0, 1.0, True, -n.cost)
            for j in on_node.values():
                rows.append(({j: 1.0, used[n.id]: -1.0}, -math.inf, 0.0))
        for r, cap in enumerate(n.capacity):
            if math.isinf(cap):
                continue
            row = capacity_row(
                {j: market.request(t).demand[r] for t, j in on_node.items()}, capacity_limit(cap)
            )
            if row is not None:
                rows.append(row)

    for group in market.exclusive_nodes:
        # Σ used(n) ≤ 1 over the group (nodes that can serve nothing have no column).
        coeffs = {used[nid]: 1.0 for nid in group if nid in used}
        if len(coeffs) > 1:
            rows.append((coeffs, -math.inf, 1.0))

    indicators: dict[int, tuple[int, ...]] = {}

    def indicator(watched: list[int]) -> int:
        # A binary that must be 1 when any of the watched shares (each <= 1) is positive.
        b = column(0.0, 1.0, True, 0.0)
        for j in watched:
            rows.append(({j: 1.0, b: -1.0}, -math.inf, 0.0))
        indicators[b] = tuple(watched)
        return b

    node_indicator: dict[tuple[str, str], int] = {}
    served_indicator: dict[str, int] = {}
    for c in market.conflicts:
        if c.scope == "market":
            if divisible:
                for t in (c.first, c.second):
                    if t not in served_indicator:
                        served_indicator[t] = indicator([served[t]])
                a, b = served_indicator[c.first], served_indicator[c.second]
            else:
                a, b = served[c.first], served[c.second]
            rows.append(({a: 1.0, b: 1.0}, -math.inf, 1.0))
            continue
        for n in market.nodes:
            ka, kb = (c.first, n.id), (c.second, n.id)
            if ka not in pair or kb not in pair:
                continue
            if divisible:
                for key in (ka, kb):
                    if key not in node_indicator:
                        node_indicator[key] = indicator([pair[key]])
                a, b = node_indicator[ka], node_indicator[kb]
            else:
                a, b = pair[ka], pair[kb]
            rows.append(({a: 1.0, b: 1.0}, -math.inf, 1.0))

    matrix = rows_matrix(rows, len(lower))
    return MilpEncoding(
        objective=np.array(objective, dtype=float),
        col_lower=np.array(lower, dtype=float),
        col_upper=np.array(upper, dtype=float),
        integral=np.array(integral, dtype=bool),
        matrix=matrix,
        row_lower=np.array([lo for _, lo, _ in rows], dtype=float),
        row_upper=np.array([hi for _, _, hi in rows], dtype=float),
        pair_columns=pair,
        served_columns=served,
        used_columns=used,
        indicators=indicators,
        divisible=divisible,
    )
