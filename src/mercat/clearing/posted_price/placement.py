"""Challenge MILPs solved over who is served and which nodes are used, replicas placed after.

In a market without resources no capacity binds and no pair carries a cost, so which node
holds which replica of a served request matters to V in two ways only: two requests in a
node conflict may not share a node, and a used node (u_n = 1 in the strengthened encoding
of `posted_price_challenge`) must hold something. The share columns x(t, n), about 7,000
of a 200 × 50 market's 7,400 columns, are otherwise interchangeable: the LP relaxation is
dual-degenerate in them, and HiGHS spends most of a challenge MILP presolving and branching
on them. `PlacementSolver` solves the same MILP exactly without them:

1. **The projected MILP R.** The model's columns other than the shares (served s_t, used
   u_n, and the holder's columns), its rows that touch no share, and rows that every
   allocation of V satisfies:
   - Σ_{n ∈ N(t)} u_n ≥ r_t·s_t: a served request has r_t replicas on distinct used nodes
     (N(t): the nodes its shares may use in this model);
   - u_n ≤ Σ_{t : n ∈ N(t)} s_t: a used node holds a served request;
   - Σ_{n ∈ N(a) ∪ N(b)} u_n ≥ r_a·s_a + r_b·s_b for a node conflict between a and b: both
     served, they need r_a + r_b distinct nodes;
   - the placement cuts found so far (step 3).
   Every point of the model projects into R, and the objective has no share term, so R's
   optimum bounds the model's.
2. **Placing R's answer.** The served requests S and used nodes O of R's optimum: requests
   of S in a node conflict with one another are placed by a bounded search, one connected
   group at a time, on their nodes in O; the others are placed by a maximum flow that gives
   every node of O that holds nothing yet a replica. If every request and node is placed,
   the point (R's answer and the shares) is checked against every row and bound of the
   model: it is feasible, worth R's optimum, and so optimal for the model.
3. **A group that cannot be placed** gives a cut. The search shrinks the group C to a core
   that still cannot be placed (dropping each request whose absence leaves it unplaceable),
   and adds Σ_{t ∈ C} s_t - Σ_{n ∈ N(C) ∖ O} u_n ≤ |C| - 1: serving all of C needs a node
   of N(C) that R left unused (placing on more nodes is never harder). When the core cannot
   be placed on V's own pairs (not only on the pairs this model leaves free), the cut holds
   for every allocation of V and joins the solver's pool, which every later model of the
   same market starts with: the dynamics meet the same tight groups turn after turn (on the
   200 × 50 benchmark, ten cuts found in the first turns answer every later MILP at once).
   R is solved again with the cut.

Anything step 2 cannot settle (a node of O that no flow covers, a search past its bound, a
point the model's rows refuse) falls back to HiGHS on the whole model: the answer is the
model's optimum either way. `tests/clearing/posted_price/test_posted_price_placement.py`
holds both to the same optima and checks every pool cut against the points of V.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow

from mercat.clearing.highs import MilpResult, solve_max
from mercat.market.constraints import MilpEncoding
from mercat.market.model import Market

SEARCH_STEPS = 20_000
"""How many partial placements the search of one group may try before it gives up (and the
whole model goes to HiGHS): groups are small (a node conflict is rare), but a search over
nodes is exponential in the worst case."""

COUNT_CUT_SUBSETS = 256
"""How many sets of nodes a core's cut may try to hold it on before it settles for the plain
cut (`_cut`)."""

MAX_ROUNDS = 50
"""How many times R may be solved again with new cuts before the whole model goes to HiGHS."""

FEASIBILITY_TOL = 1e-6
"""How far a placed point may sit outside a row or bound of the model (scaled by the bound's
size) and still count as feasible: HiGHS's own answers to R are exact to 1e-9."""


@dataclasses.dataclass(frozen=True)
class PlacementCut:
    """need·Σ_{t ∈ requests} s_t - Σ_{n ∈ nodes} u_n ≤ need·(|requests| - 1), by request and
    node index: serving every one of `requests` takes `need` used nodes among `nodes` (module
    docstring, step 3)."""

    requests: tuple[int, ...]
    nodes: tuple[int, ...]
    need: int = 1


class _Unsettled(Exception):
    """Step 2 cannot decide R's answer: the whole model goes to HiGHS (the argument says
    why, for `PlacementSolver.fallbacks`)."""


class PlacementSolver:
    """Exact solves of MILPs over one market's strengthened encoding (see the module
    docstring); the cut pool lives as long as the solver."""

    def __init__(self, market: Market, base: MilpEncoding) -> None:
        self.market = market
        self.base = base
        self.applies = (
            not market.resources
            and not market.divisible
            and all(n in base.used_columns for n in self._nodes_with_pairs(base))
        )
        request_index = {t.id: k for k, t in enumerate(market.requests)}
        node_index = {n.id: k for k, n in enumerate(market.nodes)}
        pairs = sorted(
            (request_index[t], node_index[n], j) for (t, n), j in base.pair_columns.items()
        )
        self.pair_request = np.array([p[0] for p in pairs], dtype=np.int64)
        self.pair_node = np.array([p[1] for p in pairs], dtype=np.int64)
        self.pair_column = np.array([p[2] for p in pairs], dtype=np.int64)
        self.replicas = np.array([t.replicas for t in market.requests], dtype=np.int64)
        self.served_column = np.array(
            [base.served_columns[t.id] for t in market.requests], dtype=np.int64
        )
        self.used_column = np.array(
            [base.used_columns.get(n.id, -1) for n in market.nodes], dtype=np.int64
        )
        self.conflicts: list[tuple[int, int]] = sorted(
            {
                tuple(sorted((request_index[c.first], request_index[c.second])))
                for c in market.conflicts
                if c.scope == "node"
            }
        )
        self.neighbours: list[set[int]] = [set() for _ in market.requests]
        for a, b in self.conflicts:
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)
        self.capable: list[list[int]] = [[] for _ in market.requests]
        for t, n in zip(self.pair_request.tolist(), self.pair_node.tolist(), strict=True):
            self.capable[t].append(n)
        self.pool: list[PlacementCut] = []
        self.solves = 0  # models solved
        self.rounds = 0  # R solved
        self.local_cuts = 0  # cuts that held for one model only
        self.fallbacks: dict[str, int] = {}  # why models went to HiGHS whole: how often

    def statistics(self) -> dict[str, Any]:
        """What the solver did (the benchmark reports it)."""
        return {
            "models": self.solves,
            "projected_solves": self.rounds,
            "pool_cuts": len(self.pool),
            "model_cuts": self.local_cuts,
            "to_highs_whole": dict(sorted(self.fallbacks.items())),
        }

    @staticmethod
    def _nodes_with_pairs(base: MilpEncoding):
        return {n for _, n in base.pair_columns}

    # --- public ---------------------------------------------------------------------------

    def solve(
        self,
        model: MilpEncoding,
        *,
        options: Mapping[str, bool | int | float | str] | None = None,
        may_be_infeasible: bool = False,
    ) -> MilpResult:
        """The model's proven optimum (as `solve_max` with presolve would give it: same
        objective, perhaps another of several optimal points)."""
        start = time.perf_counter()
        self.solves += 1
        whole = dict(options=options, presolve=True, may_be_infeasible=may_be_infeasible)
        misfit = self._misfit(model)
        if misfit is not None:
            return self._whole(model, misfit, whole)
        projection = _Projection(self, model)
        local: list[PlacementCut] = []
        why = "rounds"
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            reduced = projection.model(self.pool + local)
            answer = solve_max(reduced, options=options, presolve=True, may_be_infeasible=True)
            if answer.status == "Infeasible":
                if not may_be_infeasible:
                    why = "infeasible"
                    break  # a fault: let HiGHS say so on the whole model
                return dataclasses.replace(
                    answer, x=np.zeros(model.num_cols), seconds=time.perf_counter() - start
                )
            if not answer.proven:
                why = "unproven"
                break
            try:
                placed = projection.place(answer.x)
            except _Unsettled as unsettled:
                why = str(unsettled)
                break
            if isinstance(placed, np.ndarray):
                return dataclasses.replace(
                    answer,
                    x=placed,
                    objective=float(model.objective @ placed),
                    seconds=time.perf_counter() - start,
                )
            for cut, everywhere in placed:
                if everywhere:
                    self.pool.append(cut)
                else:
                    self.local_cuts += 1
                    local.append(cut)
        return self._whole(model, why, whole)

    def _whole(self, model: MilpEncoding, why: str, whole: dict) -> MilpResult:
        self.fallbacks[why] = self.fallbacks.get(why, 0) + 1
        return solve_max(model, **whole)

    # --- what the projection needs --------------------------------------------------------

    def _misfit(self, model: MilpEncoding) -> str | None:
        """Why `model` is not the base encoding with columns and rows appended, none of them
        on a share, and shares that cost nothing and are not forced on (None if it is)."""
        if not self.applies:
            return "market"
        if model.pair_columns is not self.base.pair_columns or model.num_cols < self.base.num_cols:
            return "shape"
        shares = self.pair_column
        if model.objective[shares].any() or not model.integral[shares].all():
            return "shape"
        if (model.col_lower[shares] > 0).any():
            return "forced share"
        return None


class _Projection:
    """R for one model (module docstring, step 1) and the placement of its answers."""

    def __init__(self, solver: PlacementSolver, model: MilpEncoding) -> None:
        self.solver = solver
        self.original = model
        s = solver
        num_cols = model.num_cols
        is_share = np.zeros(num_cols, dtype=bool)
        is_share[s.pair_column] = True
        self.kept = np.nonzero(~is_share)[0]
        self.position = np.full(num_cols, -1, dtype=np.int64)
        self.position[self.kept] = np.arange(len(self.kept))
        matrix = sparse.csr_array(model.matrix)
        touches = (abs(matrix) @ is_share.astype(float)) > 0
        rows = np.nonzero(~touches)[0]
        self.rows = matrix[rows][:, self.kept]
        self.row_lower = model.row_lower[rows]
        self.row_upper = model.row_upper[rows]
        # The shares this model leaves free: N(t) of each request.
        free = model.col_upper[s.pair_column] > 0
        self.free_request = s.pair_request[free]
        self.free_node = s.pair_node[free]
        self.free_column = s.pair_column[free]
        self.reachable: list[list[int]] = [[] for _ in s.replicas]
        for t, n in zip(self.free_request.tolist(), self.free_node.tolist(), strict=True):
            self.reachable[t].append(n)
        self.valid_rows = self._valid_rows()

    def column_of_served(self, requests) -> np.ndarray:
        return self.position[self.solver.served_column[np.asarray(requests, dtype=np.int64)]]

    def column_of_used(self, nodes) -> np.ndarray:
        return self.position[self.solver.used_column[np.asarray(nodes, dtype=np.int64)]]

    def _valid_rows(self) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
        """The rows of step 1 that every allocation of V satisfies."""
        s = self.solver
        n_requests = len(s.replicas)
        n_nodes = len(s.used_column)
        entries_row: list[np.ndarray] = []
        entries_col: list[np.ndarray] = []
        entries_val: list[np.ndarray] = []
        # Σ_{N(t)} u_n - r_t s_t ≥ 0, one row per request.
        entries_row += [self.free_request, np.arange(n_requests)]
        entries_col += [
            self.column_of_used(self.free_node),
            self.column_of_served(np.arange(n_requests)),
        ]
        entries_val += [np.ones(len(self.free_request)), -s.replicas.astype(float)]
        lower = [np.zeros(n_requests)]
        upper = [np.full(n_requests, math.inf)]
        # u_n - Σ_{t : n ∈ N(t)} s_t ≤ 0, one row per node that has a use column.
        has_use = np.nonzero(s.used_column >= 0)[0]
        node_row = np.full(n_nodes, -1, dtype=np.int64)
        node_row[has_use] = n_requests + np.arange(len(has_use))
        entries_row += [node_row[has_use], node_row[self.free_node]]
        entries_col += [self.column_of_used(has_use), self.column_of_served(self.free_request)]
        entries_val += [np.ones(len(has_use)), -np.ones(len(self.free_request))]
        lower.append(np.full(len(has_use), -math.inf))
        upper.append(np.zeros(len(has_use)))
        # Σ_{N(a) ∪ N(b)} u_n - r_a s_a - r_b s_b ≥ 0 for node conflicts that share a node.
        first = n_requests + len(has_use)
        count = 0
        for a, b in s.conflicts:
            on_a, on_b = set(self.reachable[a]), set(self.reachable[b])
            if not on_a & on_b:
                continue  # they can never meet on a node: the request rows say it all
            row = first + count
            count += 1
            union = sorted(on_a | on_b)
            entries_row += [np.full(len(union) + 2, row)]
            entries_col.append(
                np.concatenate([self.column_of_used(union), self.column_of_served([a, b])])
            )
            entries_val.append(
                np.concatenate([np.ones(len(union)), -s.replicas[[a, b]].astype(float)])
            )
        lower.append(np.zeros(count))
        upper.append(np.full(count, math.inf))
        matrix = sparse.csr_array(
            (
                np.concatenate(entries_val),
                (np.concatenate(entries_row), np.concatenate(entries_col)),
            ),
            shape=(first + count, len(self.kept)),
        )
        return matrix, np.concatenate(lower), np.concatenate(upper)

    def model(self, cuts: list[PlacementCut]) -> MilpEncoding:
        """R with these cuts."""
        valid, valid_lower, valid_upper = self.valid_rows
        blocks = [self.rows, valid]
        lower = [self.row_lower, valid_lower]
        upper = [self.row_upper, valid_upper]
        if cuts:
            rows, cols, vals = [], [], []
            for k, cut in enumerate(cuts):
                served = self.column_of_served(cut.requests)
                used = self.column_of_used(cut.nodes)
                rows.append(np.full(len(served) + len(used), k))
                cols += [served, used]
                vals += [np.full(len(served), float(cut.need)), -np.ones(len(used))]
            blocks.append(
                sparse.csr_array(
                    (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                    shape=(len(cuts), len(self.kept)),
                )
            )
            lower.append(np.full(len(cuts), -math.inf))
            upper.append(np.array([c.need * (len(c.requests) - 1.0) for c in cuts]))
        m = self.original
        return MilpEncoding(
            objective=m.objective[self.kept],
            col_lower=m.col_lower[self.kept],
            col_upper=m.col_upper[self.kept],
            integral=m.integral[self.kept],
            matrix=sparse.csr_array(sparse.vstack(blocks, format="csr")),
            row_lower=np.concatenate(lower),
            row_upper=np.concatenate(upper),
            pair_columns={},
            served_columns={},
            used_columns={},
            indicators={},
            divisible=False,
        )

    # --- step 2 ---------------------------------------------------------------------------

    def place(self, answer: np.ndarray) -> np.ndarray | list[tuple[PlacementCut, bool]]:
        """The model's point for R's answer, or the cuts (each with whether it holds for all
        of V) that rule the answer out."""
        s = self.solver
        served_at = answer[self.column_of_served(np.arange(len(s.replicas)))]
        served = np.nonzero(served_at > 0.5)[0].tolist()
        has_use = s.used_column >= 0
        used = np.zeros(len(s.used_column), dtype=bool)
        used[has_use] = answer[self.column_of_used(np.nonzero(has_use)[0])] > 0.5
        on = {t: [n for n in self.reachable[t] if used[n]] for t in served}
        placement: dict[int, tuple[int, ...]] = {}
        cuts: list[tuple[PlacementCut, bool]] = []
        is_served = set(served)
        free: list[int] = []
        for group in _groups(served, s.neighbours, is_served):
            if len(group) == 1:
                free += group
                continue
            found = _search(group, on, s.replicas, s.neighbours)
            if found is not None:
                placement.update(found)
                continue
            core = _core(group, on, s.replicas, s.neighbours)
            everywhere_on = {t: [n for n in s.capable[t] if used[n]] for t in core}
            everywhere = _search(core, everywhere_on, s.replicas, s.neighbours) is None
            reach = s.capable if everywhere else self.reachable
            cuts.append((_cut(sorted(core), reach, used, s.replicas, s.neighbours), everywhere))
        if cuts:
            return cuts
        placement.update(self._cover(free, on, placement, used))
        return self._point(answer, placement)

    def _cover(
        self,
        free: list[int],
        on: dict[int, list[int]],
        placement: dict[int, tuple[int, ...]],
        used: np.ndarray,
    ) -> dict[int, tuple[int, ...]]:
        """Places the requests in no node conflict with another served one so that every used
        node holds something (a maximum flow request → empty node), or raises `_Unsettled`."""
        s = self.solver
        holding = {n for nodes in placement.values() for n in nodes}
        empty = [n for n in np.nonzero(used)[0].tolist() if n not in holding]
        chosen: dict[int, list[int]] = {t: [] for t in free}
        if empty:
            slot = {n: k for k, n in enumerate(empty)}
            # Vertices: 0 source, 1..F requests, then the empty nodes, then the sink.
            sink = 1 + len(free) + len(empty)
            heads, tails, capacity = [], [], []
            for k, t in enumerate(free):
                heads.append(0)
                tails.append(1 + k)
                capacity.append(int(s.replicas[t]))
                for n in on[t]:
                    if n in slot:
                        heads.append(1 + k)
                        tails.append(1 + len(free) + slot[n])
                        capacity.append(1)
            for k in range(len(empty)):
                heads.append(1 + len(free) + k)
                tails.append(sink)
                capacity.append(1)
            graph = sparse.csr_array(
                (np.array(capacity, dtype=np.int32), (heads, tails)), shape=(sink + 1, sink + 1)
            )
            flow = maximum_flow(graph, 0, sink)
            if flow.flow_value < len(empty):
                raise _Unsettled("cover")
            moved = sparse.coo_array(flow.flow)
            for head, tail, amount in zip(moved.row, moved.col, moved.data, strict=True):
                if amount > 0 and 1 <= head <= len(free) and tail > len(free) and tail < sink:
                    chosen[free[head - 1]].append(empty[tail - 1 - len(free)])
        result: dict[int, tuple[int, ...]] = {}
        for t in free:
            nodes = chosen[t]
            rest = [n for n in on[t] if n not in nodes]
            need = int(s.replicas[t]) - len(nodes)
            if need > len(rest):
                raise _Unsettled("replicas")
            result[t] = tuple(nodes + rest[:need])
        return result

    def _point(self, answer: np.ndarray, placement: dict[int, tuple[int, ...]]) -> np.ndarray:
        """The model's column vector, checked against every row and bound (`_Unsettled` if
        any refuses it)."""
        m = self.original
        x = np.zeros(m.num_cols)
        x[self.kept] = answer
        integral = m.integral
        x[integral] = np.round(x[integral])
        share = dict(
            zip(
                zip(self.free_request.tolist(), self.free_node.tolist(), strict=True),
                self.free_column.tolist(),
                strict=True,
            )
        )
        for t, nodes in placement.items():
            for n in nodes:
                x[share[(t, n)]] = 1.0
        finite = np.maximum(
            np.abs(np.where(np.isfinite(m.row_lower), m.row_lower, 0.0)),
            np.abs(np.where(np.isfinite(m.row_upper), m.row_upper, 0.0)),
        )
        slack = FEASIBILITY_TOL * (1.0 + finite)
        activity = m.matrix @ x
        if (activity > m.row_upper + slack).any() or (activity < m.row_lower - slack).any():
            raise _Unsettled("rows")
        if (x < m.col_lower - FEASIBILITY_TOL).any() or (x > m.col_upper + FEASIBILITY_TOL).any():
            raise _Unsettled("bounds")
        return x


def _groups(served: list[int], neighbours: list[set[int]], is_served: set[int]):
    """The connected groups of served requests under node conflicts."""
    seen: set[int] = set()
    for t in served:
        if t in seen:
            continue
        group, stack = [], [t]
        seen.add(t)
        while stack:
            u = stack.pop()
            group.append(u)
            for v in sorted(neighbours[u]):
                if v in is_served and v not in seen:
                    seen.add(v)
                    stack.append(v)
        yield sorted(group)


def _search(
    group: list[int],
    on: Mapping[int, list[int]],
    replicas: np.ndarray,
    neighbours: list[set[int]],
) -> dict[int, tuple[int, ...]] | None:
    """A placement of the group (r_t nodes of `on[t]` each, no two in a node conflict on
    one node), or None if there is none; `_Unsettled` past SEARCH_STEPS.

    Backtracking that places next the request with the fewest nodes to spare, tries first
    the nodes its unplaced neighbours can do without, and looks one step ahead: a placement
    that leaves a neighbour fewer nodes than replicas is not tried."""
    members = set(group)
    options = {t: set(on[t]) for t in group}
    placed: dict[int, tuple[int, ...]] = {}
    steps = 0

    def extend() -> bool:
        nonlocal steps
        if len(placed) == len(group):
            return True
        t = min(
            (v for v in group if v not in placed),
            key=lambda v: (len(options[v]) - int(replicas[v]), v),
        )
        waiting = [v for v in neighbours[t] if v in members and v not in placed]
        demand = {n: sum(n in options[v] for v in waiting) for n in options[t]}
        candidates = sorted(options[t], key=lambda n: (demand[n], n))
        for nodes in itertools.combinations(candidates, int(replicas[t])):
            steps += 1
            if steps > SEARCH_STEPS:
                raise _Unsettled("search")
            taken = set(nodes)
            if any(len(options[v] - taken) < replicas[v] for v in waiting):
                continue
            removed = {v: options[v] & taken for v in waiting}
            for v in waiting:
                options[v] -= taken
            placed[t] = nodes
            if extend():
                return True
            del placed[t]
            for v in waiting:
                options[v] |= removed[v]
        return False

    return dict(placed) if extend() else None


def _cut(
    core: list[int],
    reach: list[list[int]],
    used: np.ndarray,
    replicas: np.ndarray,
    neighbours: list[set[int]],
) -> PlacementCut:
    """The cut of a core that cannot be placed on the used nodes of N(C) it may reach.

    The plain cut asks for a node of N(C) that R left unused; R may then answer with another
    set of as many nodes, and a group of interchangeable nodes would take it one round per
    set. So where no set of that many nodes of N(C) can hold the core either, the cut asks
    for more used nodes of N(C): one more than the largest size at which every set was tried
    and none holds it (placing on fewer nodes is never easier, so no smaller set holds it
    either). At most COUNT_CUT_SUBSETS sets are tried."""
    reachable = sorted({n for t in core for n in reach[t]})
    size = sum(1 for n in reachable if used[n])
    budget = COUNT_CUT_SUBSETS
    none_hold = None  # the largest size at which no set holds the core
    while size <= len(reachable) and math.comb(len(reachable), size) <= budget:
        budget -= math.comb(len(reachable), size)
        if any(
            _search(
                core, {t: [n for n in reach[t] if n in chosen] for t in core}, replicas, neighbours
            )
            is not None
            for chosen in map(set, itertools.combinations(reachable, size))
        ):
            break
        none_hold = size
        size += 1
    if none_hold is not None:
        return PlacementCut(tuple(core), tuple(reachable), none_hold + 1)
    return PlacementCut(tuple(core), tuple(n for n in reachable if not used[n]))


def _core(
    group: list[int],
    on: Mapping[int, list[int]],
    replicas: np.ndarray,
    neighbours: list[set[int]],
) -> list[int]:
    """A part of an unplaceable group that is still unplaceable, with no request to spare."""
    core = list(group)
    for t in group:
        rest = [v for v in core if v != t]
        if _search(rest, on, replicas, neighbours) is None:
            core = rest
    return core


__all__ = ["MAX_ROUNDS", "SEARCH_STEPS", "PlacementCut", "PlacementSolver"]
