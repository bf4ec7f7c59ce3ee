"""One capacity rule for every mechanism: a load fits when it is at most capacity_limit(C).

The markets here put capacities within a few 1e-9 of sums of demands (above and below the
limit), include demands of 0 and demands far below 1e-9, and nodes of capacity 0: where
each part used to apply its own slack. Capacities sit at odd multiples of half the slack from
a sum of demands, so no load falls within rounding of a limit, where summation order (which
differs between the parts) would decide.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.clearing.collective import _RoundState
from mercat.clearing.double_auction import DoubleAuction
from mercat.clearing.optimal import OptimalMechanism, solve_welfare
from mercat.clearing.vcg.instance import check_assignment, standard_auction
from mercat.clearing.vcg.knapsack import knapsack_enumerate, knapsack_max
from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.errors import InvalidParameterError
from mercat.market.brute_force import best_allocation, valid_allocations
from mercat.market.constraints import encode, is_valid, node_load
from mercat.market.economics import welfare
from mercat.market.generators import double_auction_market
from mercat.market.model import (
    FEASIBILITY_TOL,
    Allocation,
    Market,
    Node,
    Request,
    capacity_limit,
)

# 3.7e-11: far below the slack, and no small multiple of it is a multiple of half the slack.
DEMANDS = (0.0, 3.7e-11, 0.25, 0.5, 0.75, 1.0, 2.5, 1e6)
OFFSETS = (-4, -3, -1, 0, 1, 3)  # capacity = a sum of demands + k · slack / 2


@st.composite
def near_capacity_markets(draw: st.DrawFn, *, divisible: bool = False) -> Market:
    """One resource, 1-4 requests, 1-3 providers without costs (a standard auction when
    indivisible, a double auction when divisible); each capacity is 0, unlimited, or a sum
    of some of the demands moved by an odd multiple of half the slack (or by 0)."""
    n = draw(st.integers(1, 4))
    demands = [draw(st.sampled_from(DEMANDS)) for _ in range(n)]
    values = [draw(st.integers(1, 24)) / 4 for _ in range(n)]
    nodes = []
    for j in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("near", "near", "near", "zero", "unlimited")))
        if kind == "zero":
            capacity = 0.0
        elif kind == "unlimited":
            capacity = math.inf
        else:
            chosen = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
            base = sum(demands[i] for i in chosen)
            k = draw(st.sampled_from(OFFSETS))
            capacity = max(0.0, base + k * FEASIBILITY_TOL / 2 * max(1.0, base))
        nodes.append(Node(f"n{j}", unit_costs=(0.0,), capacity=(capacity,)))
    requests = [Request(f"t{i}", values[i], (demands[i],)) for i in range(n)]
    return Market(tuple(requests), tuple(nodes), resources=("bw",), divisible=divisible)


def assignments(market: Market):
    """Every allocation that gives each request one node or none."""
    options = [None, *(n.id for n in market.nodes)]
    for pick in itertools.product(options, repeat=len(market.requests)):
        yield Allocation.from_nodes(
            {t.id: [n] for t, n in zip(market.requests, pick, strict=True) if n is not None}
        )


def near_a_limit(market: Market, allocation: Allocation) -> bool:
    """A load within rounding of its limit (the construction avoids these; guard anyway)."""
    for n in allocation.used_nodes:
        cap = market.node(n).capacity[0]
        used = node_load(market, allocation, n)[0]
        if abs(used - capacity_limit(cap)) <= 1e-12 * max(1.0, cap):
            return True
    return False


def encoding_admits(market: Market, allocation: Allocation) -> bool:
    """The MILP itself (not HiGHS) admits the allocation: every row, bound and integrality
    holds up to rounding, the capacity slack being in the rows' bounds."""
    encoding = encode(market)
    if any((t, n) not in encoding.pair_columns for t, n, _ in allocation.shares):
        return False
    x = encoding.encode_allocation(allocation, market)
    ax = encoding.matrix @ x
    ints = x[encoding.integral]
    return bool(
        np.all(ax >= encoding.row_lower - 1e-12)
        and np.all(ax <= encoding.row_upper + 1e-12)
        and np.all(x >= encoding.col_lower)
        and np.all(x <= encoding.col_upper)
        and np.all(ints == np.round(ints))
    )


def vcg_admits(market: Market, allocation: Allocation) -> bool:
    """The VCG instance's feasibility check and its knapsacks (the columns it may build)
    admit the allocation. Requests of zero demand are left out: the auction never sees them
    (they fit anywhere, 0 <= capacity_limit(C))."""
    nodes = [n.id for n in market.nodes]
    bidders = [t for t in market.requests if t.demand[0] > 0]
    if not bidders:
        return True
    demands = [t.demand[0] for t in bidders]
    # As the mechanism does: an unlimited provider is one that holds every demand.
    capacities = np.minimum([n.capacity[0] for n in market.nodes], sum(demands))
    auction = standard_auction([1.0] * len(bidders), demands, capacities)
    assignment = np.array(
        [nodes.index(next(iter(allocation.nodes_of(t.id)))) if allocation.nodes_of(t.id) else -1
         for t in bidders]
    )  # fmt: skip
    try:
        check_assignment(auction, assignment)
        by_instance = True
    except InvalidParameterError:
        by_instance = False
    by_knapsack = True
    weights = auction.demands
    for j in range(auction.n_providers):
        members = tuple(np.flatnonzero(assignment == j))
        subsets, complete = knapsack_enumerate(
            np.ones(len(bidders)), weights, auction.capacities[j], -1.0, 10_000
        )
        assert complete
        by_knapsack &= members in {tuple(s) for s in subsets}
    assert by_instance == by_knapsack
    return by_instance


def collective_admits(market: Market, allocation: Allocation) -> bool:
    """The collective selection's eligibility test, replayed in market order."""
    state = _RoundState(market)
    for t in market.requests:
        nodes = allocation.nodes_of(t.id)
        if not nodes:
            continue
        pool, _ = state.eligible(t, weighted=False)
        if not {n.id for n in pool} >= nodes:
            return False
        state.serve(t, [market.node(n) for n in sorted(nodes)])
    return True


@settings(max_examples=150, deadline=None)
@given(near_capacity_markets())
def test_every_part_admits_exactly_the_allocations_the_checker_admits(market):
    enumerated = set(valid_allocations(market))
    compared = 0
    for allocation in assignments(market):
        if near_a_limit(market, allocation):
            continue
        compared += 1
        valid = bool(is_valid(market, allocation))
        assert (allocation in enumerated) == valid, allocation
        assert encoding_admits(market, allocation) == valid, allocation
        assert vcg_admits(market, allocation) == valid, allocation
        assert collective_admits(market, allocation) == valid, allocation
    assert compared > 0


@settings(max_examples=40, deadline=None)
@given(near_capacity_markets())
def test_optimal_vcg_and_brute_force_find_the_same_welfare(market):
    best, _ = best_allocation(market)
    by_optimal = OptimalMechanism().clear(market)
    by_vcg = VCGMechanism(workers=0).clear(market)
    for clearing in (by_optimal, by_vcg):
        assert is_valid(market, clearing.allocation)
        assert clearing.proven
        assert welfare(market, clearing.allocation) == pytest.approx(best, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(near_capacity_markets(divisible=True))
def test_optimal_and_the_double_auction_differ_by_at_most_the_slack(market):
    # One resource, linear values, no other constraint: the double auction's efficient
    # water-filling (its `bound`) is the optimum at the bare capacities. The double auction
    # never sells the slack; the MILP may, so it can do better only by the slack's worth:
    # each provider's slack at the highest unit bid, and each request served 1e-9 over.
    by_auction = DoubleAuction().clear(market)
    by_optimal = OptimalMechanism().clear(market)
    assert is_valid(market, by_auction.allocation)
    assert is_valid(market, by_optimal.allocation)
    top_bid = max((t.value / t.demand[0] for t in market.requests if t.demand[0] > 0), default=0)
    slack = sum(
        capacity_limit(n.capacity[0]) - n.capacity[0]
        for n in market.nodes
        if math.isfinite(n.capacity[0])
    )
    worth = top_bid * slack + FEASIBILITY_TOL * sum(t.value for t in market.requests)
    achieved = welfare(market, by_optimal.allocation)
    # HiGHS proves an LP optimum to its dual tolerance: a few 1e-9 of the welfare.
    assert by_auction.bound * (1 - 1e-8) - 1e-9 <= achieved <= by_auction.bound + worth + 1e-9


# --- the cases that broke the rule, one by one ------------------------------------------


def _market(demands, capacities, values=None):
    values = values or [1.0] * len(demands)
    return Market(
        tuple(
            Request(f"t{i}", v, (d,)) for i, (v, d) in enumerate(zip(values, demands, strict=True))
        ),
        tuple(Node(f"n{j}", unit_costs=(0.0,), capacity=(c,)) for j, c in enumerate(capacities)),
        resources=("bw",),
    )


def test_a_demand_within_the_relative_slack_of_a_large_capacity_is_served_by_all():
    # 10 <= capacity_limit(10 - 5e-9) = 10 + 5e-9: valid. The MILP held the row at the bare
    # capacity, VCG at an absolute 1e-9: both refused it.
    market = _market([10.0], [10.0 - 5e-9])
    assert is_valid(market, Allocation.from_nodes({"t0": ["n0"]}))
    for mechanism in (OptimalMechanism(), VCGMechanism(workers=0)):
        assert mechanism.clear(market).allocation.served_requests == {"t0"}


def test_tiny_demands_do_not_make_highs_reject_the_model():
    # 1e-10 on a node of capacity 0, and 1e-10 beside a demand of 1: HiGHS refused the raw
    # coefficients (below its smallest matrix value).
    for market in (_market([1e-10], [0.0]), _market([1e-10, 1.0], [1.0])):
        clearing = OptimalMechanism().clear(market)
        assert clearing.allocation.served_requests == {t.id for t in market.requests}
    # A thousand-fold smaller share of the row than HiGHS can hold is left out of HiGHS's
    # copy; the answer is still checked against the whole rule.
    market = _market([1e-25, 1e-25, 1.0], [1.0])
    assert OptimalMechanism().clear(market).allocation.served_requests == {"t0", "t1", "t2"}


def test_optimal_cuts_off_what_highs_packs_within_its_own_tolerance():
    # 0.5 + (0.5 + 1.5e-9) exceeds capacity_limit(1) = 1 + 1e-9 by 0.5e-9, which HiGHS's
    # 1e-9 feasibility tolerance lets through: the cover cut removes the pair.
    market = _market([0.5, 0.5 + 1.5e-9], [1.0])
    optimum = solve_welfare(market)
    assert optimum.diagnostics["cover_cuts"] == 1
    assert optimum.welfare == 1.0 and is_valid(market, optimum.allocation)


def test_the_compiled_knapsack_uses_the_same_limit_bit_for_bit():
    for capacity in (0.0, 1e-12, 0.3, 1.0, 1.0 + 1e-15, 7.25, 1e6, 1e15):
        limit = capacity_limit(capacity)
        at, above = limit, np.nextafter(limit, np.inf)
        assert knapsack_max(np.array([1.0]), np.array([at]), capacity)[0] == 1.0
        assert knapsack_max(np.array([1.0]), np.array([above]), capacity)[0] == 0.0
        subsets, _ = knapsack_enumerate(np.array([1.0]), np.array([above]), capacity, 0.5, 4)
        assert subsets == []


def test_optimal_is_not_misled_by_highs_presolve_near_the_limit():
    # Two demands of 1e-8 fit; 0.25 beside either does not (by 5e-9). HiGHS 1.16's
    # presolve merged the parallel columns and reported 0.25 as optimal; 0.5 is.
    market = _market([1e-8, 0.25, 1e-8, 0.25], [0.2499999995], values=[0.25] * 4)
    best, _ = best_allocation(market)
    assert best == 0.5
    assert welfare(market, OptimalMechanism().clear(market).allocation) == best


@pytest.mark.parametrize("seed", range(6))
def test_an_lp_answer_on_its_rows_bound_decodes_inside_the_limit(seed):
    # The LP stops exactly on a capacity row's bound; a share kept there is over the limit
    # or not by the rounding of the checker's own sum, so `decode` brings it to the bare
    # capacity. Seed 1 failed with "exceeds its bandwidth capacity: 2.4349 > 2.4349".
    market = double_auction_market(seed, 30, 4)
    clearing = OptimalMechanism().clear(market)
    assert is_valid(market, clearing.allocation)


def test_optimal_keeps_a_divisible_load_inside_the_slack_and_cuts_the_cheapest_first():
    # Two demands of 3.7e-11 on a capacity of 3.7e-11: both fit the rule's limit
    # (capacity + 1e-9), so both are served whole (decode once shrank them to 0.375).
    tiny = Market((Request("t0", 0.25, (3.7e-11,)), Request("t1", 0.5, (3.7e-11,))),
                  (Node("n0", unit_costs=(0.0,), capacity=(3.7e-11,)),),
                  resources=("bw",), divisible=True)  # fmt: skip
    assert welfare(tiny, OptimalMechanism().clear(tiny).allocation) == pytest.approx(0.75)
    # A load past the slack's middle gives way from the lowest value per unit.
    market = Market((Request("cheap", 1.0, (1.0,)), Request("dear", 3.0, (1.0,))),
                    (Node("n0", unit_costs=(0.0,), capacity=(1.0,)),),
                    resources=("bw",), divisible=True)  # fmt: skip
    encoding = encode(market)
    x = np.zeros(encoding.num_cols)
    for j in encoding.pair_columns.values():
        x[j] = 1.0  # both whole: twice the capacity
    allocation = encoding.decode(x, market)
    assert allocation.shares_of("dear") == {"n0": 1.0}
    assert "cheap" not in allocation.served_requests
    assert is_valid(market, allocation)
