"""The VCG standard auction of seed 003 §5.2.2: proven welfare optimum, Clarke payments.

n users bid b_i per unit for a demand d_i, to be served whole by one of m providers of
capacity C_j (providers do not bid). The allocation maximises welfare Σ b_i d_i over the
served users; a winner i pays the Clarke pivot

    p_i = W*_{-i} - (W* - b_i d_i),

the welfare the others lose because i takes part (W*_{-i}: the optimum without i). Losers
pay 0 (without them the optimal allocation stays optimal). Truthful and individually
rational, provided both optima are exact: this module only calls a payment *exact* when
W* and W*_{-i} are both proven; otherwise it reports an interval that holds the Clarke
payment and charges the allocation's Clarke payment with the best known W*_{-i} (inside
the interval, never above the bid: individual rationality holds).

Algorithm (docs/vcg.md): the auction is a multiple knapsack problem, solved exactly in
integer units by `mulknap` (after Pisinger's MULKNAP: surrogate bounds, the surrogate
solution split into the providers, bin completion on small providers). Each W*_{-i}
re-solve starts from the allocation without i (its provider refilled) and stops as soon as
it reaches W*, which bounds it. The column-generation solver (a set-packing formulation
over provider fillings, column generation with exact knapsack pricing, `colgen`; a proof
by reduced-cost column enumeration and a waste-bounded packing search, `exact` and
`packing`) is still the better tool where few users share a provider: `solver="auto"`
hands a welfare problem over to it when the surrogate solution averages fewer than
COLGEN_BELOW users per provider and MULKNAP_FIRST_NODES nodes did not prove it, and it
solves the auctions whose range does not fit integer units (`units.integer_auction`).

Shape for the distributed auctioneer (seed 003, Algorithm 1): `allocate` is Task 1;
`clarke_payments(state, users)` is Task 2.S for a subset S of users, a pure function of the
picklable `AllocationState`; `vcg_auction` runs Task 2 over `groups` subsets in a process
pool and gathers the results (Task 3).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mercat.clearing.base import Mechanism, Property, Seed
from mercat.clearing.vcg.colgen import ColumnPool
from mercat.clearing.vcg.exact import solve_welfare
from mercat.clearing.vcg.instance import (
    StandardAuction,
    capacity_limits,
    check_assignment,
    standard_auction,
)
from mercat.clearing.vcg.knapsack import knapsack_max
from mercat.clearing.vcg.mulknap import (
    DEFAULT_NODE_LIMIT,
    MulknapResult,
    refill,
    solve_mulknap,
    users_per_provider,
)
from mercat.clearing.vcg.units import IntegerAuction, integer_auction
from mercat.errors import (
    InvalidMarketError,
    InvalidParameterError,
    NotProvenOptimalError,
    SolverError,
)
from mercat.market.model import Allocation, Clearing, Market, relative_gap


@dataclass(frozen=True)
class AllocationState:
    """Task 1's output, everything Task 2 needs: picklable, shared by every payment group."""

    auction: StandardAuction
    assignment: np.ndarray  # provider per user, -1 unserved
    welfare: float
    bound: float  # proven upper bound on W*
    proven_optimal: bool
    pool_providers: np.ndarray  # the column pool: provider of each column ...
    pool_members: tuple[np.ndarray, ...]  # ... and its users
    time_limit: float  # per W*_{-i} solve
    target_gap: float
    seconds: float
    # The multiple-knapsack solver's instance, its optimum's bound in value units, its node
    # limit per solve; units None: the column-generation solver made this allocation.
    units: IntegerAuction | None = None
    bound_units: int = 0
    node_limit: int = DEFAULT_NODE_LIMIT
    colgen_fallback: bool = False  # auto: W*_{-i} may go to column generation (see above)

    @property
    def gap(self) -> float:
        return 0.0 if self.bound <= 0 else max(0.0, (self.bound - self.welfare) / self.bound)

    @property
    def winners(self) -> np.ndarray:
        return np.flatnonzero(self.assignment >= 0)

    def pool(self) -> ColumnPool:
        """A fresh copy of the shared column pool (a payment group grows its own copy)."""
        pool = ColumnPool(self.auction)
        for provider, users in zip(self.pool_providers, self.pool_members, strict=True):
            pool.add(int(provider), users)
        return pool


@dataclass(frozen=True)
class PaymentResult:
    """Task 2.S's output for users S: each one's W*_{-i} interval and Clarke payment."""

    users: np.ndarray
    others_optimum_lower: np.ndarray  # a feasible welfare without i (≤ W*_{-i})
    others_optimum_upper: np.ndarray  # a proven bound (≥ W*_{-i})
    proven: np.ndarray  # W*_{-i} proven for that user (lower == upper)
    seconds: np.ndarray


@dataclass(frozen=True)
class VCGOutcome:
    """The auction's result: allocation, payments, and what is proven about them."""

    assignment: np.ndarray  # provider per user, -1 unserved
    welfare: float
    bound: float
    proven_optimal: bool
    payments: np.ndarray  # charged: the exact Clarke payment, or the best estimate (see above)
    payment_lower: np.ndarray  # the Clarke payment lies in [lower, upper]
    payment_upper: np.ndarray
    payments_exact: bool  # every payment exact (allocation and all W*_{-i} proven)
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def gap(self) -> float:
        return 0.0 if self.bound <= 0 else max(0.0, (self.bound - self.welfare) / self.bound)

    @property
    def payment_uncertainty(self) -> float:
        """Largest width of a payment interval (0 when the payments are exact)."""
        widths = self.payment_upper - self.payment_lower
        return float(widths.max()) if widths.size else 0.0


SOLVERS = ("auto", "mulknap", "colgen")
"""auto: the multiple-knapsack solver, column generation where it does better (see
COLGEN_BELOW); the other two force one solver for every welfare problem."""

COLGEN_BELOW = 4.0
"""Users per provider in the surrogate solution (`mulknap.users_per_provider`) below which
`auto` gives a welfare problem to column generation when the multiple-knapsack search has
not proven it in MULKNAP_FIRST_NODES nodes. Measured on the seed's set-up (docs/vcg.md):
about 2 at n = 125, where column generation proves in tenths of a second what the search
needs 10^4-10^6 nodes for; 2-6 at n = 250, where the search proves in 10^4 nodes what
column generation could not in a minute."""

MULKNAP_FIRST_NODES = 20_000


def _check_limits(
    time_limit: float, target_gap: float, node_limit: int = DEFAULT_NODE_LIMIT, solver="auto"
) -> None:
    if not (isinstance(time_limit, int | float) and time_limit > 0):
        raise InvalidParameterError(f"time_limit must be > 0 seconds, got {time_limit!r}")
    if not (isinstance(target_gap, int | float) and 0.0 <= target_gap < 1.0):
        raise InvalidParameterError(f"target_gap must be in [0, 1), got {target_gap!r}")
    if isinstance(node_limit, bool) or not isinstance(node_limit, int) or node_limit < 1:
        raise InvalidParameterError(f"node_limit must be an integer >= 1, got {node_limit!r}")
    if solver not in SOLVERS:
        raise InvalidParameterError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


def _float_bound(units: IntegerAuction, result: MulknapResult, welfare: float) -> float:
    """A bound on the real welfare from one in value units: each served user's value is
    within half a unit of its profit."""
    if result.proven:
        return welfare
    return max(welfare, (result.bound + 0.5 * units.n_users) * units.value_unit)


def allocate(
    auction: StandardAuction,
    *,
    time_limit: float = 60.0,
    target_gap: float = 0.0,
    node_limit: int = DEFAULT_NODE_LIMIT,
    solver: str = "auto",
) -> AllocationState:
    """Task 1: the welfare-maximising assignment and its certificate.

    `target_gap` 0 asks for a proven optimum (the result says whether it got one within
    `time_limit` and, for the multiple-knapsack solver, `node_limit` nodes); a positive
    value accepts any assignment within that relative gap. Both limits also bound each
    later W*_{-i} solve."""
    _check_limits(time_limit, target_gap, node_limit, solver)
    start = time.perf_counter()
    units = None if solver == "colgen" else integer_auction(auction)
    if units is None and solver == "mulknap":
        raise InvalidParameterError(
            "the auction's demands and capacities span too wide a range for integer units"
        )
    incumbent = None
    if units is not None:
        fallback = solver == "auto" and users_per_provider(units) < COLGEN_BELOW
        result = solve_mulknap(
            units,
            target_gap=target_gap,
            node_limit=min(node_limit, MULKNAP_FIRST_NODES) if fallback else node_limit,
            deadline=start + time_limit,
        )
        welfare = check_assignment(auction, result.assignment)
        mulknap_state = AllocationState(
            auction=auction,
            assignment=result.assignment,
            welfare=welfare,
            bound=_float_bound(units, result, welfare),
            proven_optimal=result.proven,
            pool_providers=np.zeros(0, dtype=np.int64),
            pool_members=(),
            time_limit=float(time_limit),
            target_gap=float(target_gap),
            seconds=time.perf_counter() - start,
            units=units,
            bound_units=result.bound,
            node_limit=node_limit,
            colgen_fallback=fallback,
        )
        if result.proven or not fallback or mulknap_state.gap <= target_gap:
            return mulknap_state
        incumbent = _colgen_incumbent(auction, result.assignment)
    pool = ColumnPool(auction)
    solution = solve_welfare(
        pool,
        incumbent=incumbent,
        time_limit=max(start + time_limit - time.perf_counter(), 1e-3),
        target_gap=target_gap,
    )
    welfare = check_assignment(auction, solution.assignment)
    if units is not None and welfare < mulknap_state.welfare:
        return mulknap_state  # column generation stopped below the search's assignment
    return AllocationState(
        auction=auction,
        assignment=solution.assignment,
        welfare=welfare,
        bound=solution.bound,
        proven_optimal=solution.proven_optimal,
        pool_providers=np.array(pool.providers, dtype=np.int64),
        pool_members=tuple(pool.members),
        time_limit=float(time_limit),
        target_gap=float(target_gap),
        seconds=time.perf_counter() - start,
    )


def _colgen_incumbent(auction: StandardAuction, assignment: np.ndarray) -> np.ndarray | None:
    """The multiple-knapsack search's assignment as column generation's incumbent. It
    always fits the capacity rule that solver applies (integer units keep half the slack);
    the check keeps a broken assignment from seeding it."""
    served = assignment >= 0
    load = np.bincount(
        assignment[served], weights=auction.demands[served], minlength=auction.n_providers
    )
    return assignment if np.all(load <= capacity_limits(auction.capacities)) else None


def _refill_without(state: AllocationState, user: int) -> np.ndarray:
    """A good assignment without `user`: the allocation minus the user, its provider's freed
    capacity refilled by an exact knapsack over the users nobody serves."""
    auction = state.auction
    assignment = state.assignment.copy()
    provider = assignment[user]
    assignment[user] = -1
    if provider < 0:
        return assignment
    load = auction.demands[assignment == provider].sum()
    spare = float(auction.capacities[provider] - load)
    idle = np.flatnonzero(assignment < 0)
    idle = idle[idle != user]
    if idle.shape[0] and spare > 0:
        _, chosen, _ = knapsack_max(
            auction.values[idle], auction.demands[idle], spare, node_limit=200_000
        )
        assignment[idle[chosen]] = provider
    return assignment


def clarke_payments(state: AllocationState, users: Sequence[int]) -> PaymentResult:
    """Task 2.S: W*_{-i} for each user i of `users`, from the shared allocation and pool.

    Losers need no solve (W*_{-i} = W* when the allocation is optimal); winners get a
    proof of W*_{-i} within `state.time_limit` each, or a bounded interval."""
    users_array = np.asarray(list(users), dtype=np.int64)
    if np.any((users_array < 0) | (users_array >= state.auction.n_users)):
        raise InvalidParameterError("users must be indices of the auction's users")
    lower = np.empty(users_array.shape[0])
    upper = np.empty(users_array.shape[0])
    proven = np.zeros(users_array.shape[0], dtype=bool)
    seconds = np.zeros(users_array.shape[0])
    for k, user in enumerate(users_array):
        start = time.perf_counter()
        if state.assignment[user] < 0:
            lower[k], upper[k], proven[k] = state.welfare, state.bound, state.proven_optimal
        elif state.units is not None:
            lower[k], upper[k], proven[k] = _others_optimum(state, int(user), start)
        else:
            # Each solve starts from the allocation's pool, not from what earlier solves
            # added: a payment is then the same whichever group computes it, in any order.
            solution = solve_welfare(
                state.pool(),
                excluded=int(user),
                incumbent=_refill_without(state, int(user)),
                time_limit=state.time_limit,
                target_gap=state.target_gap,
            )
            if solution.assignment[user] >= 0:
                raise SolverError(f"the solve without user {user} served it")
            lower[k], upper[k] = solution.welfare, solution.bound
            proven[k] = solution.proven_optimal
        seconds[k] = time.perf_counter() - start
    return PaymentResult(users_array, lower, upper, proven, seconds)


def _others_optimum(state: AllocationState, user: int, start: float) -> tuple[float, float, bool]:
    """W*_{-i} by the multiple-knapsack solver: (welfare found, bound, proven). It starts
    from the allocation without the user, its provider refilled, and stops once it reaches
    the allocation's own bound (W*_{-i} ≤ W*). Under `auto` with few users per provider,
    column generation takes over after MULKNAP_FIRST_NODES nodes, as for the allocation."""
    units = state.units
    assert units is not None
    without = state.assignment.copy()
    without[user] = -1
    limit = state.node_limit
    result = solve_mulknap(
        units,
        excluded=user,
        incumbent=refill(units, without, int(state.assignment[user]), user),
        upper=state.bound_units,
        target_gap=state.target_gap,
        node_limit=min(limit, MULKNAP_FIRST_NODES) if state.colgen_fallback else limit,
        deadline=start + state.time_limit,
    )
    if result.assignment[user] >= 0:
        raise SolverError(f"the solve without user {user} served it")
    welfare = check_assignment(state.auction, result.assignment)
    bound = _float_bound(units, result, welfare)
    if result.proven or not state.colgen_fallback or bound <= welfare * (1 + state.target_gap):
        return welfare, bound, result.proven
    solution = solve_welfare(
        ColumnPool(state.auction),
        excluded=user,
        incumbent=_colgen_incumbent(state.auction, result.assignment),
        time_limit=max(start + state.time_limit - time.perf_counter(), 1e-3),
        target_gap=state.target_gap,
    )
    if solution.assignment[user] >= 0:
        raise SolverError(f"the solve without user {user} served it")
    found = check_assignment(state.auction, solution.assignment)
    if found < welfare:  # column generation stopped below the search's assignment
        return welfare, bound, False
    return found, max(found, min(bound, solution.bound)), solution.proven_optimal


def split_users(users: np.ndarray, groups: int) -> list[np.ndarray]:
    """Users dealt round-robin into `groups` subsets (one per group of providers)."""
    return [users[g::groups] for g in range(groups)]


def payments_from(state: AllocationState, results: Sequence[PaymentResult]) -> VCGOutcome:
    """Task 3: gather the groups' results into payments with their intervals."""
    auction = state.auction
    n = auction.n_users
    w_lower = np.full(n, state.welfare)
    w_upper = np.full(n, state.bound)
    proven = np.full(n, state.proven_optimal)
    for result in results:
        w_lower[result.users] = result.others_optimum_lower
        w_upper[result.users] = result.others_optimum_upper
        proven[result.users] = result.proven
    served = state.assignment >= 0
    value = np.where(served, auction.values, 0.0)
    # p_i = W*_{-i} - (W* - v_i); W* ∈ [welfare, bound], W*_{-i} ∈ [w_lower, w_upper].
    lower = np.where(served, w_lower - (state.bound - value), 0.0)
    upper = np.where(served, w_upper - (state.welfare - value), 0.0)
    lower = np.clip(lower, 0.0, value)
    upper = np.clip(upper, lower, value)
    exact = bool(state.proven_optimal and proven[served].all())
    charged = np.where(served, np.clip(w_lower - (state.welfare - value), 0.0, value), 0.0)
    if exact:
        lower = upper = charged
    return VCGOutcome(
        assignment=state.assignment,
        welfare=state.welfare,
        bound=state.bound,
        proven_optimal=state.proven_optimal,
        payments=charged,
        payment_lower=lower,
        payment_upper=upper,
        payments_exact=exact,
    )


def vcg_auction(
    bids: object,
    demands: object,
    capacities: object,
    *,
    groups: int = 1,
    workers: int | None = None,
    time_limit: float = 60.0,
    target_gap: float = 0.0,
    node_limit: int = DEFAULT_NODE_LIMIT,
    solver: str = "auto",
) -> VCGOutcome:
    """Run the standard auction: allocation (Task 1), payments of the winners split into
    `groups` subsets (Task 2, in a pool of `workers` processes, default one per group;
    `workers=0` computes them in this process), gathered (Task 3).

    Raises InvalidParameterError on bad input before any work."""
    auction = standard_auction(bids, demands, capacities)
    workers = _check_groups(groups, workers)
    _check_limits(time_limit, target_gap, node_limit, solver)
    start = time.perf_counter()
    state = allocate(
        auction, time_limit=time_limit, target_gap=target_gap, node_limit=node_limit, solver=solver
    )
    payment_start = time.perf_counter()
    outcome = payments_from(state, payments_in_pool(state, groups, workers))
    end = time.perf_counter()
    timings = {
        "allocation_seconds": state.seconds,
        "payments_seconds": end - payment_start,
        "total_seconds": end - start,
        "winners": float(state.winners.shape[0]),
    }
    return VCGOutcome(**{**outcome.__dict__, "timings": timings})


def _check_groups(groups: object, workers: object) -> int:
    """The number of worker processes for `groups` payment subsets (None: one per group);
    InvalidParameterError if either is not a count."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise InvalidParameterError(f"groups must be an integer >= 1, got {groups!r}")
    workers = groups if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidParameterError(f"workers must be an integer >= 0, got {workers!r}")
    return workers


def payments_in_pool(state: AllocationState, groups: int, workers: int) -> list[PaymentResult]:
    """Task 2: the winners' payments split into `groups` subsets, computed in a pool of
    `workers` processes (0, or a single subset: in this process). The results are the same
    either way (each solve starts from the allocation's pool)."""
    subsets = [s for s in split_users(state.winners, groups) if s.shape[0]]
    if workers == 0 or len(subsets) <= 1:
        return [clarke_payments(state, subset) for subset in subsets]
    with ProcessPoolExecutor(max_workers=min(workers, len(subsets))) as executor:
        return list(executor.map(clarke_payments, [state] * len(subsets), subsets))


# --- the mechanism: markets in, Clearing out ------------------------------------------------


class VCGMechanism(Mechanism):
    """VCG standard auction (seed 003 §5.2.2): proven welfare optimum, Clarke payments."""

    name = "vcg"
    margin_holder = "pool"
    summary = (
        "VCG standard auction: each user's whole demand on one provider, proven welfare "
        "optimum (exact multiple knapsack), Clarke-pivot payments"
    )
    properties = frozenset(
        {
            Property.WELFARE_MAXIMISING,
            Property.INDIVIDUALLY_RATIONAL,
            Property.TRUTHFUL,
            Property.BUDGET_BALANCED,
            Property.ZERO_MARGIN,
        }
    )

    def __init__(
        self,
        time_limit: float = 60.0,
        target_gap: float = 0.0,
        groups: int = 1,
        require_exact: bool = False,
        workers: int | None = None,
        node_limit: int = DEFAULT_NODE_LIMIT,
        solver: str = "auto",
    ) -> None:
        """`groups`: the winners' payments are split into this many subsets (Task 2);
        `workers`: processes computing them in parallel (None: one per group; 0: all in
        this process). The payments are the same either way. `node_limit` and
        `time_limit` bound each welfare problem; `solver` is one of SOLVERS."""
        _check_limits(time_limit, target_gap, node_limit, solver)
        self.node_limit = node_limit
        self.solver = solver
        self.workers = _check_groups(groups, workers)
        self.time_limit = float(time_limit)
        self.target_gap = float(target_gap)
        self.groups = groups
        self.require_exact = bool(require_exact)

    def check_market(self, market: Market) -> None:
        reasons = []
        if market.divisible:
            reasons.append("the market is divisible (the standard auction serves whole demands)")
        if len(market.resources) != 1:
            reasons.append(f"it has {len(market.resources)} resources, not one (bandwidth)")
        if market.conflicts:
            reasons.append("it has conflicts")
        for t in market.requests:
            if t.replicas != 1 or t.capabilities:
                reasons.append(f"request {t.id!r} asks for replicas or capabilities")
        for n in market.nodes:
            if n.cost or any(n.unit_costs) or n.capabilities:
                reasons.append(f"node {n.id!r} has a cost or capabilities (providers do not bid)")
        if not market.nodes:
            reasons.append("it has no providers")
        if reasons:
            raise InvalidMarketError("vcg clears standard auctions only: " + "; ".join(reasons))

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        """The auction on the market's arrays; each provider receives what its users pay.

        The seed does not say where payments go; handing them to the providers that serve
        the payers keeps the margin at zero and every provider's utility ≥ 0. `seed` is
        unused: the mechanism draws no random numbers.

        A request of zero demand fits every provider under any load (0 ≤ capacity_limit(C)),
        so it takes no part in the auction: it is served by the first provider when it is
        worth anything and pays its Clarke payment, 0 (without it the others' optimum is
        the same)."""
        self.check_market(market)
        demands = np.array([t.demand[0] for t in market.requests])
        bidders = np.flatnonzero(demands > 0)
        free = [i for i in np.flatnonzero(demands == 0) if market.requests[i].value > 0]
        users = [t.id for t in market.requests]
        nodes = [n.id for n in market.nodes]
        assignment = np.full(len(users), -1, dtype=np.int64)
        charged = np.zeros(len(users))
        lower, upper = np.zeros(len(users)), np.zeros(len(users))
        assignment[free] = 0
        free_value = float(sum(market.requests[i].value for i in free))
        outcome = None
        if bidders.shape[0]:
            d = demands[bidders]
            bids = np.array([market.requests[i].value for i in bidders]) / d
            # An unlimited provider can hold everyone: the total demand is the same constraint.
            capacities = np.minimum([n.capacity[0] for n in market.nodes], d.sum())
            outcome = vcg_auction(
                bids,
                d,
                capacities,
                groups=self.groups,
                workers=self.workers,
                time_limit=self.time_limit,
                target_gap=self.target_gap,
                node_limit=self.node_limit,
                solver=self.solver,
            )
            if self.require_exact and not outcome.payments_exact:
                raise NotProvenOptimalError(
                    f"VCG payments are not exact: allocation gap {outcome.gap:.3g}, payments "
                    f"known within {outcome.payment_uncertainty:.3g}"
                )
            assignment[bidders] = outcome.assignment
            charged[bidders] = outcome.payments
            lower[bidders], upper[bidders] = outcome.payment_lower, outcome.payment_upper
        welfare = free_value + (outcome.welfare if outcome else 0.0)
        bound = free_value + (outcome.bound if outcome else 0.0)
        winners = np.flatnonzero(assignment >= 0)
        allocation = Allocation.from_nodes({users[i]: [nodes[assignment[i]]] for i in winners})
        payments = {users[i]: float(charged[i]) for i in winners}
        rewards: dict[str, float] = {}
        for i in winners:
            node = nodes[assignment[i]]
            rewards[node] = rewards.get(node, 0.0) + payments[users[i]]
        return Clearing(
            mechanism=self.name,
            allocation=allocation,
            payments=payments,
            rewards=rewards,
            bound=bound,
            gap=relative_gap(bound, welfare),
            proven=outcome.proven_optimal if outcome else True,
            diagnostics={
                "payments_exact": outcome.payments_exact if outcome else True,
                "payment_uncertainty": outcome.payment_uncertainty if outcome else 0.0,
                "payment_intervals": {
                    users[i]: [float(lower[i]), float(upper[i])] for i in winners
                },
                **(outcome.timings if outcome else {}),
            },
        )
