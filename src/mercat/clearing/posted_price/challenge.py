"""One maker's challenge MILP kept between turns: the fast path's exact best challenge.

The reference (`BestResponder.challenge`, `posted_price_response`) builds the challenge MILP
afresh for every standing and hands it to HiGHS whole. At 200 requests × 50 nodes that is
about 7,500 binaries, and HiGHS spends about a second on each (its presolve, root cuts and
heuristics; the model itself takes 25 ms to build), on every turn: in the best-response
dynamics of a large market nearly every turn is a new challenge, not an undercut, so the
certificates of `posted_price_certificate` rarely apply. `ChallengeModel` solves the same
problem, exactly, in four steps:

1. A tighter model of the same MILP. Every node that can serve gets a use column u_n
   (x_j ≤ u_n for its pairs, u_n ≤ Σ_j x_j, so u_n = 1 iff n serves anything), and every
   row over the pairs of one node alone (a node conflict x_a + x_b ≤ 1, a capacity) is
   lifted to Σ a_j·x_j ≤ b·u_n, which says the same of integral points but forbids an LP
   that half-opens a node from using it in full. In a market without resources a node's
   conflict indicator c_n is u_n itself (the reference ties a separate c_n to the pairs),
   and the improvement e_p = max(tick, excess_p)·c_p is written into the objective or
   attempt 4's row z ≥ Σ e_p instead of a column of its own. On the 200 × 50 benchmark the
   LP bound falls from 0.28 above the optimum to 0.035.
2. The LP relaxation stays in one HiGHS instance (`mercat.clearing.highs.LpRelaxation`):
   from one standing to the next only the costs of the holder's participants and the few
   rows and columns about the holder change, and the simplex restarts from the last basis.
3. Reduced-cost fixing (`posted_price_fixing`): the gain of a known candidate (the
   re-proposal, which is always a feasible challenge, and the maker's last answers) and the
   LP bound fix every column that no allocation earning as much can change, typically 43
   of 50 nodes; if the bound itself is no better than the candidate, the candidate is the
   answer and no MILP is solved.
4. HiGHS presolves and solves the restricted MILP.

In a market without resources, steps 2 to 4 work over the projected encoding of
`posted_price_placement` instead (the served and used columns, none of the 7,000 share
columns): the LPs and the fixing over it, and every MILP solved by `PlacementSolver`, which
places the replicas after the MILP and answers the optimum over V (`ChallengeModel.solve`).

The answer is priced by `offer_for` and must agree with the MILP, as in the reference; a
restricted optimum below the candidate (which the fixing argument rules out) raises
`SolverError`. Only the base mechanism (one holder) uses this model; with the
specialization extension the responder solves the reference's model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy import sparse

from mercat.clearing.highs import LpRelaxation, MilpResult, solve_max
from mercat.clearing.posted_price.fixing import FIX_MARGIN, fix_columns, lagrangian_bound
from mercat.clearing.posted_price.placement import ODD_CYCLE_ROUNDS, PlacementSolver
from mercat.clearing.posted_price.pricing import Offer, as_solved
from mercat.clearing.posted_price.proposal import Proposal
from mercat.clearing.posted_price.reference import GAIN_TOL
from mercat.clearing.posted_price.regimes import RegimeSplit
from mercat.errors import SolverError
from mercat.market.constraints import MilpEncoding, Row
from mercat.market.economics import node_cost
from mercat.market.model import Allocation, Market

COEFFICIENT_FLOOR = 1e-9
"""Tolerance slacks at most this (rounding residue of a re-pricing or a shifted state) are
left out of attempt 4's row: HiGHS rejects a matrix entry this small, and a participant
with no slack adds nothing to ∇ when it conflicts."""

PRESOLVE_PROBING = 1 << 15
"""The `presolve_rule_off` bit of HiGHS's probing (rule 15 of its `PresolveRuleType`)."""

RESTRICTED_MILP_OPTIONS = {
    "mip_detect_symmetry": False,
    "mip_allow_restart": False,
    "mip_heuristic_effort": 0.0,
    "mip_heuristic_run_feasibility_jump": False,
    "presolve_rule_off": PRESOLVE_PROBING,
}
"""How HiGHS searches the restricted MILP: after the fixing, neither its symmetry detection
nor a restart after its own root fixing pays (on a 200 × 50 state early in the dynamics:
0.14 s instead of 0.17). Nor do its primal heuristics: late in the 200 × 50 dynamics the
best known candidate is already the optimum on the states profiled, so the MILP only has to
prove it, and the heuristics (feasibility jump, sub-MIPs) look for what is known (CPU
seconds on turns 100, 140, 170 and 195: 0.61, 0.57, 0.67, 1.09 with them, 0.21, 0.48, 0.48,
1.00 without; measured while HiGHS still presolved, see `solve_max`). Feasibility jump runs
even at effort 0; without presolve, switching it off too took turns 100, 150 and 196 from
0.75, 1.24 and 1.37 CPU seconds to 0.66, 1.06 and 1.11 (the rest is the root's cuts, which
close the gap: on turn 170 a single node). Presolve's probing costs more than it saves
here: the 200 × 50 run to convergence took 272 CPU seconds with it and 221 without (the two
runs side by side). These options change the search, not the answer; `solve_max` sets what
decides optimality after them."""

PRESOLVE = True
"""The challenge MILPs run HiGHS's presolve (without the rule that merges parallel columns,
see `mercat.clearing.highs.solve_max`); the reference's MILP does not, so the tests that
hold the two equal check the presolved answers too. Late in the 200 × 50 dynamics presolve
removes about half of the restricted MILP's rows and a quarter to 40 % of its columns. It
does not pay on every turn (turns 120 and 200 of the benchmark: 3.0-3.4 and 2.0-2.2 CPU
seconds without, 0.77 and 0.52-0.54 s with; turn 260: 0.23-0.29 s without, 0.5 s with),
but over the run to convergence it halves the CPU: 425 s without, 221 s with (probing off,
`RESTRICTED_MILP_OPTIONS`)."""

PLACEMENT = True
"""In a market without resources the challenge MILPs are solved over served requests and used
nodes, the replicas placed after (`posted_price_placement`): the same optima without the
thousands of interchangeable share columns."""

SPLIT = True
"""Attempt 4 in a market without resources first tries the split at the kink
(`posted_price_regimes`): two small MILPs and bounds instead of the one MILP below."""

CYCLE_ROWS = True
"""In a market without resources each challenge LP is cut by the odd cycles of market
conflicts its optimum violates, the rows kept in a pool and retired from the LP when idle
(`posted_price_cycle_rows`): a tighter bound, so more columns fixed and more challenges
answered by the bound alone. The 200 × 50 benchmark never violates one. At 1000 × 100, in
one run side by side with the LP without them: the first 29 turns in 1,337 CPU s against
1,443 (docs/posted-price.md)."""

CYCLE_ROWS_IN_MILP = False
"""Whether the restricted MILP also carries the cycle rows that bind in its LP. At
1000 × 100 they made turns 5-13 up to 3× faster (turn 5: 42 CPU s against 146) but the
later ones slower (turns 17-26: 683 CPU s, against 556 without any cycle rows in a separate
run); over 26 turns 1,182 s, against 1,173 s with the rows in the bound only. The later
turns decide a run to convergence, so the MILP goes without them."""

HOLDER_ROW = -1
PLACEMENT_ROW = -2
"""Kinds of the LP's rows after the base's, beside cycle rows (`_relaxation_duals`)."""

LP_POINTS = True
"""An LP optimum that is 0 or 1 on every served and used column and whose replicas can be
placed is an allocation: priced, it is a candidate (`_with_lp_point`), and where it earns
the LP bound the challenge is certified without a MILP. On the 200 × 50 benchmark: 655
MILPs instead of 665. At 1000 × 100 the known candidates can lie 1-4 below an optimum the
LP already reaches (turn 2: 4.03 below an integral LP optimum), but there the LP optima
were never placeable: no LP point in the first 19 turns (773 CPU s, against 784 without
this and without the placement cuts in the LP, side by side)."""

RECENT_ANSWERS = 4
"""Besides the re-proposal, this many of the last best challenges are priced as candidates:
the better the best candidate, the more columns the LP bound fixes (on the 200 × 50
benchmark the optimum is one of them in about 40 % of the turns)."""


def strengthened(encoding: MilpEncoding, market: Market) -> MilpEncoding:
    """V's encoding with a use column for every node that can serve and its one-node rows
    lifted (module docstring, step 1); `used_columns` then names every node's use column."""
    on_node: dict[str, list[int]] = {}
    for (_, n), j in encoding.pair_columns.items():
        on_node.setdefault(n, []).append(j)
    use = dict(encoding.used_columns)
    added = [n.id for n in market.nodes if n.id in on_node and n.id not in use]
    first = encoding.num_cols
    for k, n in enumerate(added):
        use[n] = first + k
    num_cols = first + len(added)

    # Rows whose every entry is a pair on one node, with coefficients ≥ 0, no lower bound
    # and an upper bound b ≥ 0: Σ a_j x_j ≤ b becomes Σ a_j x_j - b·u_n ≤ 0.
    node_index = {n: k for k, n in enumerate(on_node)}
    node_of = np.full(num_cols, -1)
    for n, columns in on_node.items():
        node_of[columns] = node_index[n]
    matrix = sparse.csr_array(
        (encoding.matrix.data, encoding.matrix.indices, encoding.matrix.indptr),
        shape=(encoding.num_rows, num_cols),
    )
    row_lower = encoding.row_lower.copy()
    row_upper = encoding.row_upper.copy()
    counts = np.diff(matrix.indptr)
    nonempty = counts > 0
    starts = matrix.indptr[:-1][nonempty]
    entry_node = node_of[matrix.indices]
    low_node = np.full(encoding.num_rows, -1)
    high_node = np.full(encoding.num_rows, -2)
    low_coef = np.full(encoding.num_rows, -1.0)
    low_node[nonempty] = np.minimum.reduceat(entry_node, starts)
    high_node[nonempty] = np.maximum.reduceat(entry_node, starts)
    low_coef[nonempty] = np.minimum.reduceat(matrix.data, starts)
    liftable = (
        (low_node >= 0)
        & (low_node == high_node)
        & (low_coef >= 0)
        & np.isneginf(row_lower)
        & np.isfinite(row_upper)
        & (row_upper >= 0)
    )
    lifted = np.nonzero(liftable)[0]
    nodes = list(on_node)
    coo = matrix.tocoo()
    rows = [coo.row, lifted]
    cols = [coo.col, np.array([use[nodes[low_node[i]]] for i in lifted], dtype=np.int64)]
    data = [coo.data, -row_upper[lifted]]
    row_upper[lifted] = 0.0
    matrix = sparse.csr_array(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(encoding.num_rows, num_cols),
    )

    extra: list[Row] = []
    for n in added:
        extra += [({j: 1.0, use[n]: -1.0}, -math.inf, 0.0) for j in on_node[n]]
    for n, columns in on_node.items():
        extra.append(({use[n]: 1.0, **dict.fromkeys(columns, -1.0)}, -math.inf, 0.0))
    base = dataclasses.replace(
        encoding,
        objective=np.concatenate([encoding.objective, np.zeros(len(added))]),
        col_lower=np.concatenate([encoding.col_lower, np.zeros(len(added))]),
        col_upper=np.concatenate([encoding.col_upper, np.ones(len(added))]),
        integral=np.concatenate([encoding.integral, np.ones(len(added), dtype=bool)]),
        matrix=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        used_columns=use,
    )
    return base.extended(extra)


@dataclasses.dataclass(frozen=True)
class _Holder:
    """The holder-dependent part of the model (everything `ChallengeModel.load` derives)."""

    proposal: Proposal
    objective: np.ndarray  # costs of the base columns
    tail_objective: np.ndarray
    tail_lower: np.ndarray
    tail_upper: np.ndarray
    tail_integral: np.ndarray
    rows: list[Row]
    indicator: dict[str, int]  # participant -> its c_p column
    floors: dict[str, float]  # participant -> E_p = max(tick, excess_p)
    slack: dict[str, float]  # participant -> its tolerance slack
    workload_nodes: dict[str, int]  # holder node -> its c_n column (markets with resources)
    z: int | None  # attempt 4's column z, or None


def own_margin(holder: Proposal, maker: str) -> float:
    """The constant of `maker`'s challenge MILPs: minus the holder's margin if the holder is
    the maker's own (replacing it gives that margin up), else 0."""
    return -(holder.margin if holder.maker == maker else 0.0)


class ChallengeModel:
    """The best challenge against a one-member standing, for one maker in one market."""

    def __init__(self, beliefs: Market, attempt: int, tick: float, encoding: MilpEncoding) -> None:
        if attempt not in (3, 4):
            raise ValueError(f"challenge MILPs exist for attempts 3 and 4, not {attempt}")
        self.beliefs = beliefs
        self.attempt = attempt
        self.tick = tick
        self.by_workload = bool(beliefs.resources)
        full = strengthened(encoding, beliefs)
        self._pairs_on: dict[str, dict[str, int]] = {}
        for (t, n), j in full.pair_columns.items():
            self._pairs_on.setdefault(n, {})[t] = j
        # In a market without resources the MILPs and LPs are written over the projected
        # encoding (no share columns) and solved by placing replicas after them.
        self.placement = (
            PlacementSolver(beliefs, full) if PLACEMENT and not self.by_workload else None
        )
        self.base = full if self.placement is None else self.placement.projected
        self._lp: LpRelaxation | None = None
        self._lp_costs = self.base.objective.copy()
        self._lp_tail: list[int] = []  # the LP's rows after the base's (`_relaxation_duals`)
        self._lp_placement_rows = 0  # how many of the placement cuts the LP has
        self._holder: _Holder | None = None
        self.lp_solves = 0
        self.milp_solves = 0
        self.fixed_columns: list[int] = []  # per MILP: columns the bound fixed
        self.bound_certified = 0  # challenges answered by the LP bound alone
        self.lp_points = 0  # LP optima that were allocations better than every candidate
        self.recent: list[Allocation] = []  # the last best challenges, newest last
        self.split = RegimeSplit(self) if SPLIT and attempt == 4 and not self.by_workload else None

    def solve(
        self,
        model: MilpEncoding,
        options: Mapping[str, bool | int | float | str] | None,
        initial: np.ndarray | None = None,
    ) -> tuple[MilpResult, Allocation | None]:
        """The proven optimum over V of one of this model's MILPs (infeasible allowed) and
        its allocation (None if infeasible): placed after the MILP over the projected
        encoding, or HiGHS on the full encoding (presolved if PRESOLVE, else from `initial`)."""
        self.milp_solves += 1
        if self.placement is not None:
            return self.placement.solve(model, options=options, may_be_infeasible=True)
        result = solve_max(
            model, options=options, initial=initial, presolve=PRESOLVE, may_be_infeasible=True
        )
        if result.status == "Infeasible":
            return result, None
        return result, model.decode(result.x, self.beliefs)

    def remember(self, allocation: Allocation) -> None:
        """Keep a best challenge as a candidate for the next ones (allocations recur: in a
        large market the makers rotate among a few node sets)."""
        if allocation in self.recent:
            self.recent.remove(allocation)
        self.recent = [*self.recent[-(RECENT_ANSWERS - 1) :], allocation]

    # --- the holder-dependent part -------------------------------------------------------

    def load(self, holder: Proposal) -> _Holder:
        """Write the model for this holder (kept until another holder is loaded)."""
        if self._holder is not None and self._holder.proposal == holder:
            return self._holder
        beliefs, tick, base = self.beliefs, self.tick, self.base
        objective = base.objective.copy()
        tail_objective: list[float] = []
        tail_lower: list[float] = []
        tail_upper: list[float] = []
        tail_integral: list[bool] = []
        rows: list[Row] = []

        def column(hi: float, is_int: bool, cost: float) -> int:
            tail_objective.append(cost)
            tail_lower.append(0.0)
            tail_upper.append(hi)
            tail_integral.append(is_int)
            return base.num_cols + len(tail_objective) - 1

        indicator: dict[str, int] = {}
        floors: dict[str, float] = {}
        slack: dict[str, float] = {}
        workload_nodes: dict[str, int] = {}
        pays_floor = self.attempt == 3  # attempt 3 pays Σ e_p; attempt 4 pays z

        # Sorted, as in the reference: the holder's participants are sets, and the order of
        # the columns and rows added here decides which of several equally good answers
        # HiGHS returns.
        for t in sorted(holder.requests):
            j = base.served_columns[t]
            floors[t] = max(tick, holder.payments[t] - beliefs.request(t).value)
            indicator[t], slack[t] = j, holder.request_slack(t)
            objective[j] = holder.payments[t] - (floors[t] if pays_floor else 0.0)
        for n in sorted(holder.nodes):
            on_node = self._pairs_on.get(n, {})
            if not on_node:
                continue  # a node that can serve nothing here is never a conflicting one
            held = node_cost(beliefs, holder.allocation, n)
            floors[n] = max(tick, held - holder.rewards[n])
            slack[n] = holder.node_slack(n)
            # If n conflicts, the margin pays φ_b(n) for it instead of its cost here.
            change = held - holder.rewards[n] - (floors[n] if pays_floor else 0.0)
            if not self.by_workload:
                indicator[n] = base.used_columns[n]
                objective[indicator[n]] += change
                continue
            c = indicator[n] = workload_nodes[n] = column(1.0, True, change)
            bundle = holder.allocation.requests_on(n)
            aggregate = {c: 1.0}
            for t, j in on_node.items():
                if t in bundle:
                    rows.append(({c: 1.0, j: -1.0}, -math.inf, 0.0))
                    aggregate[j] = -1.0
                else:
                    rows.append(({c: 1.0, j: 1.0}, -math.inf, 1.0))
                    aggregate[j] = 1.0
            rows.append((aggregate, 1.0 - len(bundle), math.inf))
        if not indicator:
            raise SolverError("challenge MILP against a standing with no participant")
        rows.append((dict.fromkeys(indicator.values(), 1.0), 1.0, math.inf))
        z = None
        if self.attempt == 4:
            nabla = holder.slack
            z = column(max(math.fsum(floors.values()), nabla + tick), False, -1.0)
            need = {z: 1.0}
            for p, j in indicator.items():
                need[j] = -floors[p]
            rows.append((need, 0.0, math.inf))
            cover = {z: 1.0}
            for p, j in indicator.items():
                if slack[p] > COEFFICIENT_FLOOR:  # HiGHS refuses entries |a_ij| ≤ 1e-9
                    cover[j] = slack[p]
                else:
                    slack[p] = 0.0
            rows.append((cover, nabla + tick, math.inf))
        self._holder = _Holder(
            proposal=holder,
            objective=objective,
            tail_objective=np.array(tail_objective, dtype=float),
            tail_lower=np.array(tail_lower, dtype=float),
            tail_upper=np.array(tail_upper, dtype=float),
            tail_integral=np.array(tail_integral, dtype=bool),
            rows=rows,
            indicator=indicator,
            floors=floors,
            slack=slack,
            workload_nodes=workload_nodes,
            z=z,
        )
        return self._holder

    def model(self, holder: Proposal, maker: str) -> tuple[MilpEncoding, float]:
        """The challenge MILP of `maker` against this holder: maximise, then add the constant
        (minus the holder's margin if it is the maker's own)."""
        h = self.load(holder)
        model = dataclasses.replace(self.base, objective=h.objective).extended(
            h.rows,
            objective=np.concatenate([h.objective, h.tail_objective]),
            col_lower=np.concatenate([self.base.col_lower, h.tail_lower]),
            col_upper=np.concatenate([self.base.col_upper, h.tail_upper]),
            integral=np.concatenate([self.base.integral, h.tail_integral]),
        )
        return model, own_margin(holder, maker)

    def point(self, holder: Proposal, allocation: Allocation) -> np.ndarray:
        """The model's column vector for an allocation: a feasible point worth its gain if it
        conflicts with the holder (tests/clearing/posted_price hold it to `offer_for`)."""
        h = self.load(holder)
        on_base = (
            self.base.encode_allocation(allocation, self.beliefs)
            if self.placement is None
            else self.placement.encode_allocation(allocation)
        )
        x = np.concatenate([on_base, np.zeros(len(h.tail_objective))])
        for n, c in h.workload_nodes.items():
            bundle = holder.allocation.requests_on(n)
            x[c] = 1.0 if allocation.requests_on(n) == bundle else 0.0
        if h.z is not None:
            on = {p: x[j] for p, j in h.indicator.items()}
            x[h.z] = max(
                math.fsum(h.floors[p] * on[p] for p in on),
                holder.slack + self.tick - math.fsum(h.slack[p] * on[p] for p in on),
            )
        return x

    # --- solving ----------------------------------------------------------------------------

    def _relaxation_duals(
        self, holder: Proposal
    ) -> tuple[np.ndarray, list[Row], list[Row], np.ndarray]:
        """The LP relaxation for this holder (warm-started): its optimal row duals over the
        model's rows and then the rows the LP adds to them, those rows (the placement cuts,
        then the active odd-cycle rows), the odd-cycle rows among them that bind, and the LP
        optimum (over the model's columns). Over the projected encoding, the odd cycles its
        optimum violates are cut first (`posted_price_cycle_rows`), and the placement
        solver's cuts, which every MILP carries, are in the LP too: an LP optimum that is an
        allocation is then one the replicas can more often be placed for (`_with_lp_point`).

        The LP's rows are the base's, then the rows of the holders, of the placement cuts
        and the cycle rows in the order they came (`_lp_tail`: HOLDER_ROW, PLACEMENT_ROW,
        or k ≥ 0 for cycle row k). A new holder's rows replace the last one's; the others
        stay in place between holders, so the simplex restarts from a basis that already
        meets them."""
        h = self.load(holder)
        base = self.base
        if self._lp is None:
            self._lp = LpRelaxation(base)
        lp = self._lp
        changed = np.nonzero(h.objective != self._lp_costs)[0]
        lp.set_costs(changed, h.objective[changed])
        self._lp_costs = h.objective.copy()
        lp.delete_rows([base.num_rows + i for i, k in enumerate(self._lp_tail) if k == HOLDER_ROW])
        self._lp_tail = [k for k in self._lp_tail if k != HOLDER_ROW]
        lp.truncate(base.num_cols, lp.num_rows)
        lp.append(h.tail_objective, h.tail_lower, h.tail_upper, h.rows)
        self._lp_tail += [HOLDER_ROW] * len(h.rows)
        placement_rows = [] if self.placement is None else self.placement.pool_rows
        new_cuts = placement_rows[self._lp_placement_rows :]
        if new_cuts:
            lp.append([], [], [], new_cuts)
            self._lp_tail += [PLACEMENT_ROW] * len(new_cuts)
            self._lp_placement_rows = len(placement_rows)
        self.lp_solves += 1
        solution = lp.solve()
        cycles = None if self.placement is None or not CYCLE_ROWS else self.placement.cycle_rows
        for _ in range(ODD_CYCLE_ROUNDS if cycles is not None else 0):
            new = cycles.violated(solution.x)
            if not new:
                break
            lp.append([], [], [], [cycles.rows[k] for k in new])
            self._lp_tail += new
            self.lp_solves += 1
            solution = lp.solve()
        tail = solution.duals[base.num_rows :]
        on_holder = [y for y, k in zip(tail, self._lp_tail, strict=True) if k == HOLDER_ROW]
        on_cuts = [y for y, k in zip(tail, self._lp_tail, strict=True) if k == PLACEMENT_ROW]
        cut_rows = placement_rows[: len(on_cuts)]
        head = [solution.duals[: base.num_rows], on_holder, on_cuts]
        if cycles is None:
            return np.concatenate(head), cut_rows, [], solution.x
        at = {k: i for i, k in enumerate(self._lp_tail) if k >= 0}
        on_cycles = np.array([tail[at[k]] for k in cycles.active])
        duals = np.concatenate([*head, on_cycles])
        was_active = list(cycles.active)
        added = cut_rows + [cycles.rows[k] for k in was_active]
        binding = [cycles.rows[k] for k in cycles.binding(on_cycles)]
        leaving = {was_active[i] for i in cycles.retire(on_cycles)}
        lp.delete_rows([base.num_rows + at[k] for k in leaving])
        self._lp_tail = [k for k in self._lp_tail if k not in leaving]
        return duals, added, binding, solution.x

    def _with_lp_point(
        self,
        x: np.ndarray,
        known: tuple[Offer, Allocation],
        price: Callable[[Allocation], Offer | None],
    ) -> tuple[Offer, Allocation]:
        """The best known candidate, or the LP optimum's allocation where that is one (0 or 1
        on every served and used column, its replicas placeable) and earns more."""
        if self.placement is None:
            return known
        allocation = self.placement.place(x)
        if allocation is None:
            return known
        offer = price(allocation)
        if offer is None or offer.gain <= known[0].gain + GAIN_TOL:
            return known
        self.lp_points += 1
        return offer, allocation

    def best(
        self,
        holder: Proposal,
        maker: str,
        candidates: list[tuple[Offer, Allocation]],
        price: Callable[[Allocation], Offer | None],
    ) -> Offer | None:
        """`maker`'s most profitable challenge (None if no allocation conflicts with the holder).

        `candidates` are offers already priced against this holder, each a challenge on its
        allocation; `price(allocation)` prices another one (`offer_for`)."""
        known = max(candidates, key=lambda c: c[0].gain, default=None)
        if self.split is not None and known is not None:
            offer = self.split.best(holder, own_margin(holder, maker), candidates, price)
            if offer is not None:
                self.remember(offer.proposal.allocation)
                return offer
        model, constant = self.model(holder, maker)
        start = None
        if known is not None:
            duals, added, binding, at_lp = self._relaxation_duals(holder)
            # the bound over every row the LP had (the MILP gets the cycle rows that bind
            # only if CYCLE_ROWS_IN_MILP)
            bound = lagrangian_bound(model.extended(added) if added else model, duals)
            if LP_POINTS and bound.value + constant > known[0].gain + GAIN_TOL:
                known = self._with_lp_point(at_lp, known, price)
            if bound.value + constant <= known[0].gain + GAIN_TOL:
                self.bound_certified += 1
                self.remember(known[1])
                return known[0]
            lower, upper, fixed = fix_columns(model, bound, known[0].gain - constant)
            if binding and CYCLE_ROWS_IN_MILP:
                model = model.extended(binding)
            model = dataclasses.replace(model, col_lower=lower, col_upper=upper)
            self.fixed_columns.append(fixed)
            # The candidate survives the fixing (it is worth L), so it is a feasible start:
            # late in the dynamics it is usually the optimum, and HiGHS then only proves it.
            # HiGHS takes no start with presolve (`solve_max`), and presolved without one it
            # is as fast (late turns of the 200 × 50 benchmark: 5.5 CPU s for ten MILPs
            # without the start, 6.5 with it, 6.7 with the start and no presolve).
            if not PRESOLVE and self.placement is None:
                start = self.point(holder, known[1])
        result, allocation = self.solve(
            model, None if known is None else RESTRICTED_MILP_OPTIONS, initial=start
        )
        if result.status == "Infeasible":
            if known is not None:
                raise SolverError("the restricted challenge MILP lost the known candidate")
            return None
        if not result.proven:
            raise SolverError(f"HiGHS did not prove the best challenge (status {result.status})")
        expected = result.objective + constant
        if known is not None and expected < known[0].gain - FIX_MARGIN:
            raise SolverError(
                f"the restricted challenge MILP found {expected:.9g}, below the known "
                f"candidate's {known[0].gain:.9g}"
            )
        offer = as_solved(price(allocation), expected, "the best-challenge MILP")
        self.remember(offer.proposal.allocation)
        return offer


__all__ = [
    "CYCLE_ROWS",
    "CYCLE_ROWS_IN_MILP",
    "LP_POINTS",
    "PLACEMENT",
    "PRESOLVE",
    "PRESOLVE_PROBING",
    "RECENT_ANSWERS",
    "SPLIT",
    "ChallengeModel",
    "own_margin",
    "strengthened",
]
