"""Challenge MILPs solved over who is served and which nodes are used, replicas placed after.

In a market without resources no capacity binds and no pair carries a cost, so which node
holds which replica of a served request matters to V in two ways only: two requests in a
node conflict may not share a node, and a used node (u_n = 1 in the strengthened encoding
of `posted_price_challenge`) must hold something. The share columns x(t, n), about 7,000
of a 200 × 50 market's 7,400 columns, are otherwise interchangeable: the LP relaxation is
dual-degenerate in them, and HiGHS spends most of a challenge MILP presolving and branching
on them. `PlacementSolver` takes them out:

1. **The projected encoding R** (`PlacementSolver.projected`): the strengthened encoding's
   served and used columns and its rows that touch no share, and rows that every
   allocation of V satisfies:
   - Σ_{n ∈ N(t)} u_n ≥ r_t·s_t: a served request has r_t replicas on distinct used nodes
     (N(t): the nodes that can serve it);
   - u_n ≤ Σ_{t : n ∈ N(t)} s_t: a used node holds a served request;
   - Σ_{n ∈ N(a) ∪ N(b)} u_n ≥ r_a·s_a + r_b·s_b for a node conflict between a and b that
     can meet on a node: both served, they need r_a + r_b distinct nodes;
   - Σ_{t ∈ C} s_t ≤ (|C| - 1) / 2 for an odd cycle C of market conflicts
     (`mercat.market.odd_cycles`), those R's LP relaxation violates, separated before its
     first solve. In a large market the market conflicts make the welfare MILP a weighted
     stable-set problem, whose LP over the conflict rows alone serves odd cycles by half: on
     the 1000 × 100 benchmark market the bound falls from 62.8 above the optimum to 0.1, and
     HiGHS proves R's optimum at its root in about 3 s instead of 130-170 s.
   Every allocation of V has a point in R, worth the same (no share costs anything), so
   R's optimum bounds V's. The challenge model writes its MILPs, and keeps its LP
   relaxations, over R instead of the whole encoding (at 200 × 50: 250 columns, not 7,393).
2. **Placing an answer** (`PlacementSolver.solve`): the model is solved with the pool of
   cuts (step 3) as rows, and its answer (the served requests S and used nodes O) is
   placed. Requests of S in a node conflict with one another are placed by a bounded
   search, one connected group at a time, on their nodes in O; the others by a maximum
   flow that gives every node of O that holds nothing yet a replica. If every request and
   node is placed, the allocation is checked (`is_valid`, and it serves S on O exactly): it
   is a point of V worth the answer, and so the model's optimum over V.
3. **A group that cannot be placed** gives a cut (`_cut`) over R's columns that every
   allocation of V satisfies. The search shrinks the group to a core C that still cannot
   be placed, and the cut asks for as many used nodes of N(C) as the smallest set that can
   hold C (or, where that count is not established, for a node of N(C) that the answer left
   unused). Where every group can be placed but the flow leaves a used node empty, HiGHS
   places the whole answer with every used node covered, and if it cannot, a pattern cut
   rules out that one answer (`PatternCut`). Cuts join the solver's pool, which every
   later model starts with: the dynamics meet the same tight groups turn after turn (on the
   200 × 50 benchmark, ten cuts found in the first turns answer every later MILP at once).
   The model is solved again.

A group past the search's bound is searched member by member (each with the requests it
conflicts with) for a small part that cannot be placed, then placed by HiGHS as a
feasibility MILP. Anything step 2 cannot settle (an answer HiGHS did not prove, more than
MAX_ROUNDS rounds) goes to HiGHS on the whole model over the full encoding
(`PlacementSolver.lift`): the answer is the model's optimum over V either way.
`tests/clearing/posted_price/test_posted_price_placement.py` holds both to the same optima
and checks every pool cut against the points of V.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow

from mercat.clearing.highs import LpRelaxation, MilpResult, solve_max
from mercat.clearing.posted_price.cycle_rows import CycleRows
from mercat.errors import InvalidParameterError, SolverError
from mercat.market.constraints import MilpEncoding, Row, is_valid, rows_matrix
from mercat.market.model import Allocation, Market
from mercat.market.odd_cycles import violated_odd_cycles

SEARCH_STEPS = 20_000
"""How many partial placements the search of one group may try before it gives up (and the
group goes to `PlacementSolver._place_large`): groups are small while node conflicts are
rare, but a search over nodes is exponential in the worst case."""

COUNT_CUT_SUBSETS = 256
"""How many sets of nodes a core's cut may try to hold it on before it settles for the plain
cut (`_cut`)."""

LOCAL_FIRST = 12
"""An unplaceable group of more members than this is first searched for unplaceable parts
around each member (`PlacementSolver._local_cuts`) before the deletion filter over the
whole group (`_core`): on the 1000 × 100 benchmark market a group of 321 served requests
on 5 used nodes took the filter 91 s, and its core has 6 requests."""

MAX_ROUNDS = 50
"""How many times a model may be solved again with new cuts before it goes to HiGHS whole."""

ODD_CYCLE_ROUNDS = 30
"""How many rounds of odd-cycle separation R's LP relaxation gets (`_with_odd_cycles`); on
the 1000 × 100 benchmark market three rounds add 822 rows and the fourth finds none."""

INTEGRAL = 1e-7
"""A point's column within this of 0 or 1 is taken as that value (`place`); LP optima meet
their rows to 1e-9 (`LpRelaxation`)."""

ODD_CYCLES_PER_ROUND = 1000
"""At most this many odd-cycle rows are added per round."""


@dataclasses.dataclass(frozen=True)
class PlacementCut:
    """need·Σ_{t ∈ requests} s_t - Σ_{n ∈ nodes} u_n ≤ need·(|requests| - 1), by request and
    node index: serving every one of `requests` takes `need` used nodes among `nodes` (module
    docstring, step 3)."""

    requests: tuple[int, ...]
    nodes: tuple[int, ...]
    need: int = 1


@dataclasses.dataclass(frozen=True)
class PatternCut:
    """No allocation serves exactly `served` on exactly the nodes `used` (by index): the
    answer's requests could each be placed, but not so that every used node holds one. The
    row Σ_{served} s_t + Σ_{used} u_n - Σ_{other requests} s_t - Σ_{other nodes} u_n ≤
    |served| + |used| - 1 rules out that one answer."""

    served: tuple[int, ...]
    used: tuple[int, ...]


class _Unsettled(Exception):
    """Step 2 cannot decide an answer: the whole model goes to HiGHS (the argument says
    why, for `PlacementSolver.fallbacks`)."""


class PlacementSolver:
    """The projected encoding of one market without resources, exact solves of MILPs written
    over it, and the pool of placement cuts (see the module docstring)."""

    def __init__(self, market: Market, full: MilpEncoding) -> None:
        """`full`: the market's strengthened encoding (`posted_price_challenge.strengthened`),
        with a use column for every node that can serve."""
        if market.resources or market.divisible:
            raise InvalidParameterError(
                "replicas are placed after the MILP only in indivisible markets without resources"
            )
        self.market = market
        self.full = full
        request_index = {t.id: k for k, t in enumerate(market.requests)}
        node_index = {n.id: k for k, n in enumerate(market.nodes)}
        pairs = sorted(
            (request_index[t], node_index[n], j) for (t, n), j in full.pair_columns.items()
        )
        self.pair_request = np.array([p[0] for p in pairs], dtype=np.int64)
        self.pair_node = np.array([p[1] for p in pairs], dtype=np.int64)
        self.pair_column = np.array([p[2] for p in pairs], dtype=np.int64)
        self.replicas = np.array([t.replicas for t in market.requests], dtype=np.int64)
        if any(full.used_columns.get(market.nodes[n].id) is None for n in set(self.pair_node)):
            raise InvalidParameterError("the encoding lacks a use column for a node that can serve")
        self.conflicts: list[tuple[int, int]] = sorted(
            {
                tuple(sorted((request_index[c.first], request_index[c.second])))
                for c in market.conflicts
                if c.scope == "node"
            }
        )
        # market conflicts (never both served), by request index: R's odd cycles
        self.market_conflicts = np.array(
            [(request_index[c.first], request_index[c.second])
             for c in market.conflicts if c.scope == "market"],
            dtype=np.int64,
        ).reshape(-1, 2)  # fmt: skip
        self.neighbours: list[set[int]] = [set() for _ in market.requests]
        for a, b in self.conflicts:
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)
        self.capable: list[list[int]] = [[] for _ in market.requests]
        for t, n in zip(self.pair_request.tolist(), self.pair_node.tolist(), strict=True):
            self.capable[t].append(n)
        self.odd_cycle_rows = 0  # R's odd-cycle rows (`_with_odd_cycles`)
        self.projected, self.to_full = self._project()
        self.served_column = np.array(
            [self.projected.served_columns[t.id] for t in market.requests], dtype=np.int64
        )
        self.used_column = np.array(
            [self.projected.used_columns.get(n.id, -1) for n in market.nodes], dtype=np.int64
        )
        # odd-cycle rows for the challenge LPs over R (`posted_price_cycle_rows`)
        self.cycle_rows = CycleRows(self.projected.num_cols, self.odd_cycle_cuts)
        self.pool: list[PlacementCut | PatternCut] = []
        self._pool_rows: list = []  # the pool's cuts as rows over R's columns (`_row`)
        self.solves = 0  # models solved
        self.rounds = 0  # solves of a model with the pool's cuts
        self.fallbacks: dict[str, int] = {}  # why models went to HiGHS whole: how often

    @property
    def pool_rows(self) -> list[Row]:
        """The pool's cuts as rows over R's columns, in the order found (every MILP carries
        them; the list only grows)."""
        return self._pool_rows

    def statistics(self) -> dict[str, Any]:
        """What the solver did (the benchmark reports it)."""
        return {
            "models": self.solves,
            "projected_solves": self.rounds,
            "pool_cuts": len(self.pool),
            "odd_cycle_rows": self.odd_cycle_rows,
            **self.cycle_rows.statistics(),
            "to_highs_whole": dict(sorted(self.fallbacks.items())),
        }

    # --- step 1 ---------------------------------------------------------------------------

    def _project(self) -> tuple[MilpEncoding, np.ndarray]:
        """R, and the full encoding's column of each of R's columns."""
        full = self.full
        is_share = np.zeros(full.num_cols, dtype=bool)
        is_share[self.pair_column] = True
        kept = np.nonzero(~is_share)[0]
        position = np.full(full.num_cols, -1, dtype=np.int64)
        position[kept] = np.arange(len(kept))
        matrix = sparse.csr_array(full.matrix)
        touches = (abs(matrix) @ is_share.astype(float)) > 0
        rows = np.nonzero(~touches)[0]
        served = np.array([full.served_columns[t.id] for t in self.market.requests], dtype=np.int64)
        used = np.array(
            [full.used_columns.get(n.id, -1) for n in self.market.nodes], dtype=np.int64
        )

        def served_at(requests) -> np.ndarray:
            return position[served[np.asarray(requests, dtype=np.int64)]]

        def used_at(nodes) -> np.ndarray:
            return position[used[np.asarray(nodes, dtype=np.int64)]]

        n_requests = len(self.replicas)
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lower: list[np.ndarray] = []
        upper: list[np.ndarray] = []
        # Σ_{N(t)} u_n - r_t s_t ≥ 0, one row per request.
        entries.append((self.pair_request, used_at(self.pair_node), np.ones(len(self.pair_node))))
        entries.append(
            (np.arange(n_requests), served_at(np.arange(n_requests)), -self.replicas.astype(float))
        )
        lower.append(np.zeros(n_requests))
        upper.append(np.full(n_requests, math.inf))
        # u_n - Σ_{t : n ∈ N(t)} s_t ≤ 0, one row per node with a use column.
        has_use = np.nonzero(used >= 0)[0]
        node_row = np.full(len(used), -1, dtype=np.int64)
        node_row[has_use] = n_requests + np.arange(len(has_use))
        entries.append((node_row[has_use], used_at(has_use), np.ones(len(has_use))))
        entries.append(
            (node_row[self.pair_node], served_at(self.pair_request), -np.ones(len(self.pair_node)))
        )
        lower.append(np.full(len(has_use), -math.inf))
        upper.append(np.zeros(len(has_use)))
        # Σ_{N(a) ∪ N(b)} u_n - r_a s_a - r_b s_b ≥ 0 for node conflicts that can meet.
        row = n_requests + len(has_use)
        pairwise = 0
        for a, b in self.conflicts:
            on_a, on_b = set(self.capable[a]), set(self.capable[b])
            if not on_a & on_b:
                continue  # never on one node: the request rows say it all
            union = sorted(on_a | on_b)
            columns = np.concatenate([used_at(union), served_at([a, b])])
            values = np.concatenate([np.ones(len(union)), -self.replicas[[a, b]].astype(float)])
            entries.append((np.full(len(columns), row + pairwise), columns, values))
            pairwise += 1
        lower.append(np.zeros(pairwise))
        upper.append(np.full(pairwise, math.inf))
        valid = sparse.csr_array(
            (
                np.concatenate([e[2] for e in entries]),
                (np.concatenate([e[0] for e in entries]), np.concatenate([e[1] for e in entries])),
            ),
            shape=(row + pairwise, len(kept)),
        )
        projected = MilpEncoding(
            objective=full.objective[kept],
            col_lower=full.col_lower[kept],
            col_upper=full.col_upper[kept],
            integral=full.integral[kept],
            matrix=sparse.csr_array(sparse.vstack([matrix[rows][:, kept], valid], format="csr")),
            row_lower=np.concatenate([full.row_lower[rows], *lower]),
            row_upper=np.concatenate([full.row_upper[rows], *upper]),
            pair_columns={},
            served_columns={t: int(position[j]) for t, j in full.served_columns.items()},
            used_columns={n: int(position[j]) for n, j in full.used_columns.items()},
            indicators={},
            divisible=False,
        )
        return self._with_odd_cycles(projected, served_at(np.arange(n_requests))), kept

    def _with_odd_cycles(self, projected: MilpEncoding, served: np.ndarray) -> MilpEncoding:
        """R with the odd-cycle rows of the market conflicts (`mercat.market.odd_cycles`)
        that its LP relaxation violates, separated round after round until it violates none
        (`served`: each request's column). They hold on every allocation of V, whatever the
        objective, so every later model starts with them. (A challenge's LP optimum lies
        elsewhere and may violate other cycles; separating those too, per challenge, was
        measured at 1000 × 100 and not kept: docs/posted-price.md.)"""
        if not len(self.market_conflicts):
            return projected
        relaxation = LpRelaxation(projected)
        rows: list = []
        for _ in range(ODD_CYCLE_ROUNDS):
            new = self.odd_cycle_cuts(relaxation.solve().x, served)
            if not new:
                break
            relaxation.append([], [], [], new)
            rows += new
        self.odd_cycle_rows = len(rows)
        return projected.extended(rows) if rows else projected

    def odd_cycle_cuts(self, x: np.ndarray, served: np.ndarray | None = None) -> list[Row]:
        """Rows Σ_{t ∈ C} s_t ≤ (|C| - 1) / 2 for the odd cycles C of market conflicts that
        the point `x` violates (`served`: each request's column in x, by default R's)."""
        served = self.served_column if served is None else served
        cycles = violated_odd_cycles(self.market_conflicts, x[served], limit=ODD_CYCLES_PER_ROUND)
        return [
            (dict.fromkeys(served[list(cycle)].tolist(), 1.0), -math.inf, (len(cycle) - 1) / 2)
            for cycle in cycles
        ]

    def encode_allocation(self, allocation: Allocation) -> np.ndarray:
        """An allocation's point in R (its served and used columns)."""
        return self.full.encode_allocation(allocation, self.market)[self.to_full]

    def lift(self, model: MilpEncoding) -> MilpEncoding:
        """The same model over the full encoding: its columns and rows beyond R's appended to
        the full encoding's, its costs and bounds on R's columns moved to theirs."""
        base = self.projected
        self._check_shape(model)
        full = self.full
        extra = model.num_cols - base.num_cols
        column = np.concatenate([self.to_full, full.num_cols + np.arange(extra)])
        tail = model.matrix[base.num_rows :].tocoo()
        rows = sparse.csr_array(
            (tail.data, (tail.row, column[tail.col])),
            shape=(model.num_rows - base.num_rows, full.num_cols + extra),
        )
        head = sparse.csr_array(
            (full.matrix.data, full.matrix.indices, full.matrix.indptr),
            shape=(full.num_rows, full.num_cols + extra),
        )

        def moved(values: np.ndarray, on_full: np.ndarray) -> np.ndarray:
            out = np.concatenate([on_full, values[base.num_cols :]])
            out[self.to_full] = values[: base.num_cols]
            return out

        return dataclasses.replace(
            full,
            objective=moved(model.objective, np.zeros(full.num_cols)),
            col_lower=moved(model.col_lower, full.col_lower),
            col_upper=moved(model.col_upper, full.col_upper),
            integral=moved(model.integral, full.integral).astype(bool),
            matrix=sparse.csr_array(sparse.vstack([head, rows], format="csr")),
            row_lower=np.concatenate([full.row_lower, model.row_lower[base.num_rows :]]),
            row_upper=np.concatenate([full.row_upper, model.row_upper[base.num_rows :]]),
        )

    def _check_shape(self, model: MilpEncoding) -> None:
        base = self.projected
        if (
            model.served_columns is not base.served_columns
            or model.num_cols < base.num_cols
            or model.num_rows < base.num_rows
            or not np.array_equal(model.row_lower[: base.num_rows], base.row_lower)
            or not np.array_equal(model.row_upper[: base.num_rows], base.row_upper)
        ):
            raise InvalidParameterError(
                "the model must be the projected encoding with columns and rows appended"
            )

    # --- steps 2 and 3 --------------------------------------------------------------------

    def solve(
        self,
        model: MilpEncoding,
        *,
        options: Mapping[str, bool | int | float | str] | None = None,
        may_be_infeasible: bool = False,
    ) -> tuple[MilpResult, Allocation | None]:
        """The proven optimum over V of a model written over `projected` (its rows beyond
        R's, its costs and bounds), as HiGHS would prove it on `lift(model)`, and the
        allocation at that point (None if the model is infeasible). The point is over the
        model's columns. Every allocation it returns has been checked (`is_valid`)."""
        start = time.perf_counter()
        self.solves += 1
        self._check_shape(model)
        why = "rounds"
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            answer = solve_max(
                model.extended(self._pool_rows),
                options=options,
                presolve=True,
                may_be_infeasible=True,
            )
            if answer.status == "Infeasible":
                if not may_be_infeasible:
                    why = "infeasible"
                    break  # a fault: let HiGHS say so on the whole model
                return dataclasses.replace(
                    answer, x=np.zeros(model.num_cols), seconds=time.perf_counter() - start
                ), None
            if not answer.proven:
                why = "unproven"
                break
            try:
                placed = self._place(answer.x)
            except _Unsettled as unsettled:
                why = str(unsettled)
                break
            if isinstance(placed, Allocation):
                x = answer.x.copy()
                x[model.integral] = np.round(x[model.integral])
                return dataclasses.replace(
                    answer,
                    x=x,
                    objective=float(model.objective @ x),
                    seconds=time.perf_counter() - start,
                ), placed
            self.pool += placed
            self._pool_rows += [self._row(cut) for cut in placed]
        return self._whole(model, why, options, may_be_infeasible, start)

    def _whole(
        self,
        model: MilpEncoding,
        why: str,
        options: Mapping[str, bool | int | float | str] | None,
        may_be_infeasible: bool,
        start: float,
    ) -> tuple[MilpResult, Allocation | None]:
        """HiGHS on `lift(model)`, its answer brought back to the model's columns (`why`:
        what step 2 could not settle, counted in `fallbacks`)."""
        self.fallbacks[why] = self.fallbacks.get(why, 0) + 1
        lifted = self.lift(model)
        result = solve_max(
            lifted, options=options, presolve=True, may_be_infeasible=may_be_infeasible
        )
        full = self.full
        x = np.concatenate([result.x[self.to_full], result.x[full.num_cols :]])
        back = dataclasses.replace(result, x=x, seconds=time.perf_counter() - start)
        if result.status == "Infeasible":
            return back, None
        allocation = lifted.decode(result.x, self.market)
        if not is_valid(self.market, allocation):
            raise SolverError("HiGHS's answer on the whole model is not a valid allocation")
        return back, allocation

    def _row(self, cut: PlacementCut | PatternCut) -> tuple[dict[int, float], float, float]:
        """A cut as a row over R's columns."""
        if isinstance(cut, PatternCut):
            coeffs = dict.fromkeys(self.served_column.tolist(), -1.0)
            coeffs.update(dict.fromkeys(self.used_column[self.used_column >= 0].tolist(), -1.0))
            coeffs.update(dict.fromkeys(self.served_column[list(cut.served)].tolist(), 1.0))
            coeffs.update(dict.fromkeys(self.used_column[list(cut.used)].tolist(), 1.0))
            return coeffs, -math.inf, len(cut.served) + len(cut.used) - 1.0
        coeffs = dict.fromkeys(self.served_column[list(cut.requests)].tolist(), float(cut.need))
        coeffs.update(dict.fromkeys(self.used_column[list(cut.nodes)].tolist(), -1.0))
        return coeffs, -math.inf, cut.need * (len(cut.requests) - 1.0)

    def place(self, x: np.ndarray) -> Allocation | None:
        """The allocation at a point over R's columns (an LP optimum, say) whose served and
        used columns are all 0 or 1, if its replicas can be placed; else None. (Cuts found
        on the way are not kept: they would weigh on every later MILP for a point that is
        no MILP's answer. On the 200 × 50 benchmark keeping them took the pool from 10 cuts
        to 57.)"""
        has_use = self.used_column >= 0
        columns = np.concatenate([self.served_column, self.used_column[has_use]])
        if np.max(np.abs(x[columns] - np.round(x[columns])), initial=0.0) > INTEGRAL:
            return None
        try:
            placed = self._place(x)
        except _Unsettled:
            return None
        return placed if isinstance(placed, Allocation) else None

    def _place(self, answer: np.ndarray) -> Allocation | list[PlacementCut | PatternCut]:
        """The allocation for an answer, or the cuts that rule the answer out."""
        served = np.nonzero(answer[self.served_column] > 0.5)[0].tolist()
        used = np.zeros(len(self.used_column), dtype=bool)
        has_use = self.used_column >= 0
        used[has_use] = answer[self.used_column[has_use]] > 0.5
        on = {t: [n for n in self.capable[t] if used[n]] for t in served}
        placement: dict[int, tuple[int, ...]] = {}
        cuts: list[PlacementCut | PatternCut] = []
        free: list[int] = []
        for group in _groups(served, self.neighbours, set(served)):
            if len(group) == 1:
                free += group
                continue
            try:
                found = _search(group, on, self.replicas, self.neighbours)
            except _Unsettled:
                large = self._place_large(group, on, used)
                if isinstance(large, list):
                    cuts += large
                else:
                    placement.update(large)
                continue
            if found is not None:
                placement.update(found)
                continue
            # Unplaceable. Cores are small (a few requests around one that has too few
            # nodes): look for them around each member before the deletion filter over the
            # whole group, which searches the group once per member.
            local = self._local_cuts(group, on, used) if len(group) > LOCAL_FIRST else []
            if local:
                cuts += local
                continue
            core = sorted(_core(group, on, self.replicas, self.neighbours))
            cuts.append(_cut(core, self.capable, used, self.replicas, self.neighbours))
        if cuts:
            return cuts
        try:
            placement.update(_cover(free, on, placement, used, self.replicas))
        except _Unsettled:
            # The flow over the requests outside groups leaves a used node empty: HiGHS on
            # the whole placement, every used node covered, decides.
            opened = np.nonzero(used)[0].tolist()
            found = _placement_milp(served, on, self.replicas, self.neighbours, cover=opened)
            if found is None:
                return [PatternCut(tuple(served), tuple(opened))]
            placement = found
        requests, nodes = self.market.requests, self.market.nodes
        allocation = Allocation.from_nodes(
            {requests[t].id: [nodes[n].id for n in chosen] for t, chosen in placement.items()}
        )
        # The answer's own served requests and used nodes, and a valid allocation: a point
        # of V worth the answer (no share costs anything).
        if set(allocation.served_requests) != {requests[t].id for t in served}:
            raise _Unsettled("served")
        if set(allocation.used_nodes) != {nodes[n].id for n in np.nonzero(used)[0]}:
            raise _Unsettled("used")
        if not is_valid(self.market, allocation):
            raise _Unsettled("invalid")
        return allocation

    def _place_large(
        self, group: list[int], on: dict[int, list[int]], used: np.ndarray
    ) -> dict[int, tuple[int, ...]] | list[PlacementCut]:
        """A group past the search's bound (a large market's served requests can form one
        conflict group of hundreds): first each member with the served requests it conflicts
        with, searched alone, where a part that cannot be placed gives its core's cut; then
        HiGHS on the group's placement (`_placement_milp`). A group HiGHS proves unplaceable
        gives the plain cut over the whole group."""
        cuts = self._local_cuts(group, on, used)
        if cuts:
            return cuts
        found = _placement_milp(group, on, self.replicas, self.neighbours)
        if found is not None:
            return found
        reachable = sorted({n for t in group for n in self.capable[t]})
        return [PlacementCut(tuple(group), tuple(n for n in reachable if not used[n]))]

    def _local_cuts(
        self, group: list[int], on: dict[int, list[int]], used: np.ndarray
    ) -> list[PlacementCut]:
        """The cuts of the unplaceable parts made of one member of the group and the members
        it conflicts with (each searched alone, tightest members first), each part's core's
        cut once; none if every such part can be placed (the group may still not be)."""
        members = set(group)
        cuts: list[PlacementCut] = []
        for t in sorted(group, key=lambda v: (len(on[v]) - int(self.replicas[v]), v)):
            part = sorted({t} | (self.neighbours[t] & members))
            try:
                if _search(part, on, self.replicas, self.neighbours) is not None:
                    continue
                core = sorted(_core(part, on, self.replicas, self.neighbours))
                cut = _cut(core, self.capable, used, self.replicas, self.neighbours)
            except _Unsettled:
                continue  # a neighbourhood too large to search: the caller decides
            if cut not in cuts:
                cuts.append(cut)
        return cuts


def _placement_milp(
    group: list[int],
    on: Mapping[int, list[int]],
    replicas: np.ndarray,
    neighbours: list[set[int]],
    cover: Iterable[int] = (),
) -> dict[int, tuple[int, ...]] | None:
    """A placement of the group found by HiGHS (a feasibility MILP: r_t shares of each
    request on its nodes, no two requests in a node conflict on one node, every node of
    `cover` holding one), or None if HiGHS proves there is none; `_Unsettled` if it proves
    neither."""
    columns = [(t, n) for t in group for n in on[t]]
    index = {pair: j for j, pair in enumerate(columns)}
    rows: list = []
    for t in group:
        rows.append(({index[(t, n)]: 1.0 for n in on[t]}, float(replicas[t]), float(replicas[t])))
    members = set(group)
    for a in group:
        for b in sorted(neighbours[a] & members):
            if a < b:
                for n in sorted(set(on[a]) & set(on[b])):
                    rows.append(({index[(a, n)]: 1.0, index[(b, n)]: 1.0}, -math.inf, 1.0))
    for n in cover:
        holders = {index[(t, n)]: 1.0 for t in group if (t, n) in index}
        rows.append((holders, 1.0, math.inf))
    size = len(columns)
    model = MilpEncoding(
        objective=np.zeros(size),
        col_lower=np.zeros(size),
        col_upper=np.ones(size),
        integral=np.ones(size, dtype=bool),
        matrix=rows_matrix(rows, size),
        row_lower=np.array([lo for _, lo, _ in rows], dtype=float),
        row_upper=np.array([hi for _, _, hi in rows], dtype=float),
        pair_columns={},
        served_columns={},
        used_columns={},
        indicators={},
        divisible=False,
    )
    result = solve_max(model, presolve=True, may_be_infeasible=True)
    if result.status == "Infeasible":
        return None
    if not result.proven:
        raise _Unsettled("placement milp")
    chosen: dict[int, list[int]] = {t: [] for t in group}
    for (t, n), value in zip(columns, result.x, strict=True):
        if value > 0.5:
            chosen[t].append(n)
    return {t: tuple(nodes) for t, nodes in chosen.items()}


def _cover(
    free: list[int],
    on: dict[int, list[int]],
    placement: dict[int, tuple[int, ...]],
    used: np.ndarray,
    replicas: np.ndarray,
) -> dict[int, tuple[int, ...]]:
    """Places the requests in no node conflict with another served one so that every used
    node holds something (a maximum flow request → empty node), or raises `_Unsettled`."""
    holding = {n for nodes in placement.values() for n in nodes}
    empty = [n for n in np.nonzero(used)[0].tolist() if n not in holding]
    chosen: dict[int, list[int]] = {t: [] for t in free}
    if empty:
        slot = {n: k for k, n in enumerate(empty)}
        # Vertices: 0 the source, 1..F the requests, then the empty nodes, then the sink.
        sink = 1 + len(free) + len(empty)
        heads, tails, capacity = [], [], []
        for k, t in enumerate(free):
            heads.append(0)
            tails.append(1 + k)
            capacity.append(int(replicas[t]))
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
            if amount > 0 and 1 <= head <= len(free) and len(free) < tail < sink:
                chosen[free[head - 1]].append(empty[tail - 1 - len(free)])
    result: dict[int, tuple[int, ...]] = {}
    for t in free:
        nodes = chosen[t]
        rest = [n for n in on[t] if n not in nodes]
        need = int(replicas[t]) - len(nodes)
        if need > len(rest):
            raise _Unsettled("replicas")
        result[t] = tuple(nodes + rest[:need])
    return result


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
        try:
            held = any(
                _search(
                    core,
                    {t: [n for n in reach[t] if n in chosen] for t in core},
                    replicas,
                    neighbours,
                )
                is not None
                for chosen in map(set, itertools.combinations(reachable, size))
            )
        except _Unsettled:
            break  # a set the search cannot decide: keep what is established
        if held:
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
    """A part of an unplaceable group that is still unplaceable, with no request to spare
    (a request is kept where the search cannot decide without it)."""
    core = list(group)
    for t in group:
        rest = [v for v in core if v != t]
        try:
            unplaceable = _search(rest, on, replicas, neighbours) is None
        except _Unsettled:
            unplaceable = False
        if unplaceable:
            core = rest
    return core


__all__ = [
    "COUNT_CUT_SUBSETS",
    "MAX_ROUNDS",
    "SEARCH_STEPS",
    "PatternCut",
    "PlacementCut",
    "PlacementSolver",
]
