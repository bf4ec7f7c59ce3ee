"""The placement solver (`posted_price_placement`): the same optima as HiGHS on the whole
model over the full encoding, allocations that are valid and match the answer, cuts that
every allocation of V satisfies, and a search that finds a placement whenever there is
one."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mercat.clearing.highs import solve_max
from mercat.clearing.posted_price import placement
from mercat.clearing.posted_price.challenge import strengthened
from mercat.clearing.posted_price.placement import PlacementSolver, _search
from mercat.errors import InvalidParameterError
from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import encode, is_valid
from mercat.market.economics import welfare
from mercat.market.generators import random_market
from mercat.market.model import Conflict, Market, Node, Request
from tests.clearing.posted_price.test_posted_price_challenge import violation
from tests.strategies import conflicted_markets, markets

quarters = st.integers(-8, 8).map(lambda k: k / 4)


@st.composite
def crowded_markets(draw):
    """Few nodes, many node conflicts, requests worth serving: markets whose first projected
    answer often cannot be placed (the general strategy's rarely fail)."""
    labels = st.frozensets(st.sampled_from(("gpu", "ssd")))
    nodes = tuple(
        Node(f"n{k}", cost=draw(st.integers(0, 4)) / 4, capabilities=draw(labels))
        for k in range(draw(st.integers(2, 4)))
    )
    requests = tuple(
        Request(f"t{k}", draw(st.integers(4, 24)) / 4, (), draw(st.integers(1, 2)), draw(labels))
        for k in range(draw(st.integers(3, 7)))
    )
    conflicts = tuple(
        Conflict(a.id, b.id, "node")
        for a, b in itertools.combinations(requests, 2)
        if draw(st.integers(0, 2)) > 0
    )
    return Market(requests, nodes, conflicts, ())


@st.composite
def challenge_like(draw):
    """A market without resources, its placement solver, and a model over the projected
    encoding shaped as the challenge MILPs are: other costs on the served and used columns,
    sometimes a row that rewards keeping some of them (as attempt 4's rows pull a holder's
    nodes open), sometimes a column forced on (as reduced-cost fixing does)."""
    market = draw(
        st.one_of(
            markets(max_requests=5, max_nodes=4, max_resources=0),
            crowded_markets(),
            conflicted_markets(),
        )
    )
    solver = PlacementSolver(market, strengthened(encode(market), market))
    base = solver.projected
    objective = base.objective.copy()
    indicators = sorted([*base.served_columns.values(), *base.used_columns.values()])
    for j in indicators:
        if draw(st.booleans()):
            objective[j] = draw(quarters)
    model = dataclasses.replace(base, objective=objective)
    if indicators and draw(st.booleans()):
        kept = draw(st.lists(st.sampled_from(indicators), min_size=1, unique=True))
        weights = {j: draw(st.integers(1, 3)) / 2 for j in kept}
        need = draw(st.integers(0, 2 * len(kept))) / 2
        model = model.extended([(weights, need, math.inf)])
    if indicators and draw(st.sampled_from(range(8))) == 7:
        lower = model.col_lower.copy()
        lower[draw(st.sampled_from(indicators))] = 1.0
        model = dataclasses.replace(model, col_lower=lower)
    return market, solver, model


def cut_holds_on_v(market, solver, cut):
    """Whether every valid allocation satisfies the cut (need·Σ served - Σ used ≤
    need·(|C| - 1); for a pattern cut: no allocation serves and uses exactly its pattern)."""
    if isinstance(cut, placement.PatternCut):
        served = {market.requests[t].id for t in cut.served}
        used = {market.nodes[n].id for n in cut.used}
        return not any(
            set(a.served_requests) == served and set(a.used_nodes) == used
            for a in valid_allocations(market)
        )
    for allocation in valid_allocations(market):
        x = solver.encode_allocation(allocation)
        served = sum(x[solver.served_column[t]] for t in cut.requests)
        used = sum(x[solver.used_column[n]] for n in cut.nodes)
        if cut.need * served - used > cut.need * (len(cut.requests) - 1) + 1e-9:
            return False
    return True


def holds_to_highs(market, solver, model):
    """The solver's answer against HiGHS on the lifted model; returns the solver's result."""
    expected = solve_max(solver.lift(model), may_be_infeasible=True)
    got, allocation = solver.solve(model, may_be_infeasible=True)
    if expected.status == "Infeasible":
        assert got.status == "Infeasible" and allocation is None
        return got
    assert got.proven
    assert got.objective == pytest.approx(expected.objective, abs=1e-7)
    # The allocation is valid, it is the answer's point, and the point is the model's.
    assert is_valid(market, allocation)
    point = solver.encode_allocation(allocation)
    assert np.array_equal(point, got.x[: len(point)])
    assert violation(model, got.x) <= 1e-6
    for cut in solver.pool:
        assert cut_holds_on_v(market, solver, cut), cut
    return got


@settings(max_examples=200, deadline=None)
@given(challenge_like())
def test_the_placement_solver_finds_highs_optimum(case):
    market, solver, model = case
    holds_to_highs(market, solver, model)
    event(f"odd-cycle rows: {min(solver.odd_cycle_rows, 2)}")
    event(f"rounds: {solver.rounds}, cuts: {len(solver.pool)}")
    event(f"pattern cuts: {sum(isinstance(c, placement.PatternCut) for c in solver.pool)}")
    event(f"to HiGHS whole: {sorted(solver.fallbacks)}")


@settings(max_examples=150, deadline=None)
@given(crowded_markets())
def test_crowded_markets_reach_their_welfare_optimum_through_cuts(market):
    solver = PlacementSolver(market, strengthened(encode(market), market))
    holds_to_highs(market, solver, solver.projected)
    event(f"rounds: {min(solver.rounds, 3)}{'+' if solver.rounds > 3 else ''}")
    event(f"to HiGHS whole: {sorted(solver.fallbacks)}")


@settings(max_examples=60, deadline=None)
@given(st.one_of(markets(max_requests=4, max_nodes=3, max_resources=0), conflicted_markets()))
def test_the_projected_encoding_holds_every_allocation_at_its_welfare(market):
    solver = PlacementSolver(market, strengthened(encode(market), market))
    base = solver.projected
    for allocation in valid_allocations(market):
        x = solver.encode_allocation(allocation)
        assert violation(base, x) <= 1e-9, allocation
        assert base.objective @ x == pytest.approx(welfare(market, allocation), abs=1e-9)


def test_r_cuts_the_odd_cycles_its_lp_serves_by_half():
    """Five requests worth 1 in a cycle of market conflicts, one free node: the edge rows
    let the LP serve each by half (2.5); R's odd-cycle row holds it to the optimum, 2."""
    requests = tuple(Request(f"t{k}", 1.0, (), 1) for k in range(5))
    conflicts = tuple(
        Conflict(requests[k].id, requests[(k + 1) % 5].id, "market") for k in range(5)
    )
    market = Market(requests, (Node("n0", cost=0.0),), conflicts, ())
    full = strengthened(encode(market), market)
    relaxed = dataclasses.replace(full, integral=np.zeros(full.num_cols, dtype=bool))
    assert solve_max(relaxed).objective == pytest.approx(2.5)
    solver = PlacementSolver(market, full)
    assert solver.odd_cycle_rows == 1
    base = solver.projected
    lp = solve_max(dataclasses.replace(base, integral=np.zeros(base.num_cols, dtype=bool)))
    assert lp.objective == pytest.approx(2.0)
    result, allocation = solver.solve(base)
    assert result.objective == pytest.approx(2.0) and len(allocation.served_requests) == 2


def triangle():
    """Three requests in pairwise node conflicts, one replica each, worth 5; three nodes
    costing 1. Two used nodes satisfy every pairwise row of R, but the three need three."""
    nodes = tuple(Node(f"n{k}", cost=1.0, unit_costs=(), capacity=()) for k in range(3))
    requests = tuple(Request(f"t{k}", 5.0, (), 1) for k in range(3))
    conflicts = tuple(Conflict(a.id, b.id, "node") for a, b in itertools.combinations(requests, 2))
    return Market(requests, nodes, conflicts, ())


def test_an_unplaceable_group_becomes_a_cut_of_the_pool():
    market = triangle()
    solver = PlacementSolver(market, strengthened(encode(market), market))
    result, allocation = solver.solve(solver.projected)
    assert result.objective == pytest.approx(12.0)  # all three served on three nodes
    assert len(allocation.used_nodes) == 3
    assert solver.rounds == 2 and solver.fallbacks == {}
    # Any two of the nodes fail alike, so the cut asks for all three (not "another one").
    (cut,) = solver.pool
    assert cut == placement.PlacementCut((0, 1, 2), (0, 1, 2), need=3)
    assert cut_holds_on_v(market, solver, cut)
    # A second model of the same market starts with the cut: its first answer places.
    solver.solve(solver.projected)
    assert solver.rounds == 3


def test_a_group_past_the_search_bound_is_placed_by_highs(monkeypatch):
    # With no search steps at all, every group takes the large groups' path: parts that
    # cannot be searched either, then HiGHS on the placement, which proves two nodes too few
    # for the triangle (a plain cut over the group, one per pair of nodes tried) and then
    # places it on three.
    market = triangle()
    monkeypatch.setattr(placement, "SEARCH_STEPS", 0)
    solver = PlacementSolver(market, strengthened(encode(market), market))
    result, allocation = solver.solve(solver.projected)
    assert result.objective == pytest.approx(12.0) and len(allocation.used_nodes) == 3
    assert solver.fallbacks == {} and solver.rounds == len(solver.pool) + 1
    for cut in solver.pool:  # one plain cut per pair of nodes the answer tried
        assert cut.requests == (0, 1, 2) and len(cut.nodes) == 1 and cut.need == 1
        assert cut_holds_on_v(market, solver, cut)


def test_what_step_two_cannot_settle_goes_to_highs_whole(monkeypatch):
    market = triangle()
    monkeypatch.setattr(placement, "MAX_ROUNDS", 1)  # the triangle needs a second round
    solver = PlacementSolver(market, strengthened(encode(market), market))
    result, allocation = solver.solve(solver.projected)
    assert result.objective == pytest.approx(12.0) and len(allocation.used_nodes) == 3
    assert solver.fallbacks == {"rounds": 1}
    assert np.array_equal(solver.encode_allocation(allocation), result.x)


def test_the_solver_refuses_what_it_cannot_answer():
    with_resources = random_market(1, 5, 3)
    encoded = strengthened(encode(with_resources), with_resources)
    with pytest.raises(InvalidParameterError, match="without resources"):
        PlacementSolver(with_resources, encoded)
    market = triangle()
    solver = PlacementSolver(market, strengthened(encode(market), market))
    with pytest.raises(InvalidParameterError, match="projected encoding"):
        solver.solve(strengthened(encode(market), market))  # the full encoding, not R


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_search_places_a_group_whenever_it_can_be_placed(data):
    size = data.draw(st.integers(1, 4))
    nodes = range(4)
    on = {t: data.draw(st.lists(st.sampled_from(nodes), unique=True)) for t in range(size)}
    replicas = np.array([data.draw(st.integers(1, 2)) for _ in range(size)])
    edges = data.draw(
        st.lists(
            st.sampled_from(list(itertools.combinations(range(size), 2)) or [(0, 0)]), unique=True
        )
    )
    neighbours = [set() for _ in range(size)]
    for a, b in edges:
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    found = _search(list(range(size)), on, replicas, neighbours)
    choices = [list(itertools.combinations(on[t], int(replicas[t]))) for t in range(size)]
    exists = any(
        all(not set(p[a]) & set(p[b]) for a in range(size) for b in neighbours[a])
        for p in itertools.product(*choices)
    )
    assert (found is not None) == exists
    if found is not None:
        for t, chosen in found.items():
            assert len(set(chosen)) == replicas[t] and set(chosen) <= set(on[t])
            for v in neighbours[t]:
                assert not set(chosen) & set(found[v])
