"""The placement solver (`posted_price_placement`): the same optima as HiGHS on the whole
model, feasible points that decode to valid allocations, cuts that every allocation of V
satisfies, and a search that finds a placement whenever there is one."""

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
from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import encode, is_valid
from mercat.market.generators import random_market
from mercat.market.model import Conflict, Market, Node, Request
from tests.clearing.posted_price.test_posted_price_challenge import violation
from tests.strategies import markets

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
    """A market without resources, its strengthened encoding, and a model over it shaped as
    the challenge MILPs are: other costs on the served and used columns (shares cost
    nothing), sometimes a row that rewards keeping some of them (as attempt 4's rows pull
    a holder's nodes open), sometimes a lower bound that forces a column on."""
    market = draw(
        st.one_of(markets(max_requests=5, max_nodes=4, max_resources=0), crowded_markets())
    )
    base = strengthened(encode(market), market)
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
    if model.num_cols and draw(st.sampled_from(range(8))) == 7:
        lower = model.col_lower.copy()
        lower[draw(st.sampled_from(range(model.num_cols)))] = 1.0
        model = dataclasses.replace(model, col_lower=lower)
    return market, base, model


def cut_holds_on_v(market, base, cut):
    """Whether every valid allocation satisfies the cut (need·Σ served - Σ used ≤
    need·(|C| - 1))."""
    requests = [market.requests[t].id for t in cut.requests]
    nodes = [market.nodes[n].id for n in cut.nodes]
    for allocation in valid_allocations(market):
        x = base.encode_allocation(allocation, market)
        served = sum(x[base.served_columns[t]] for t in requests)
        used = sum(x[base.used_columns[n]] for n in nodes)
        if cut.need * served - used > cut.need * (len(requests) - 1) + 1e-9:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(challenge_like())
def test_the_placement_solver_finds_highs_optimum(case):
    market, base, model = case
    solver = PlacementSolver(market, base)
    expected = solve_max(model, may_be_infeasible=True)
    got = solver.solve(model, may_be_infeasible=True)
    event(f"rounds of R: {solver.rounds}, cuts: {len(solver.pool) + solver.local_cuts}")
    event(f"to HiGHS whole: {sorted(solver.fallbacks)}")
    assert got.status == expected.status or "Infeasible" not in (got.status, expected.status)
    if expected.status == "Infeasible":
        assert got.status == "Infeasible"
        return
    assert got.proven
    assert got.objective == pytest.approx(expected.objective, abs=1e-7)
    assert violation(model, got.x) <= 1e-6
    assert is_valid(market, model.decode(got.x, market))
    for cut in solver.pool:
        assert cut_holds_on_v(market, base, cut), cut


def triangle():
    """Three requests in pairwise node conflicts, one replica each, worth 5; three nodes
    costing 1. Two used nodes satisfy every pairwise row of R, but the three need three."""
    nodes = tuple(Node(f"n{k}", cost=1.0, unit_costs=(), capacity=()) for k in range(3))
    requests = tuple(Request(f"t{k}", 5.0, (), 1) for k in range(3))
    conflicts = tuple(Conflict(a.id, b.id, "node") for a, b in itertools.combinations(requests, 2))
    return Market(requests, nodes, conflicts, ())


def test_an_unplaceable_group_becomes_a_cut_of_the_pool():
    market = triangle()
    base = strengthened(encode(market), market)
    solver = PlacementSolver(market, base)
    result = solver.solve(base)
    assert result.objective == pytest.approx(12.0)  # all three served on three nodes
    assert solver.rounds == 2 and solver.fallbacks == {}
    (cut,) = solver.pool
    # Any two of the nodes fail alike, so the cut asks for all three (not "another one").
    assert cut == placement.PlacementCut((0, 1, 2), (0, 1, 2), need=3)
    assert cut_holds_on_v(market, base, cut)
    # A second model of the same market starts with the cut: R's first answer places.
    solver.solve(base)
    assert solver.rounds == 3


def test_cuts_from_a_restricted_model_stay_with_that_model():
    # The triangle, and a fourth request that only a fourth node can serve. The model fixes
    # the triangle's shares on that node off (as reduced-cost fixing does): on the nodes R
    # uses, the triangle cannot be placed in this model, though V could place it there.
    # That cut holds for this model only and must not join the pool.
    small = triangle()
    gpu = frozenset({"gpu"})
    market = Market(
        (*small.requests, Request("t3", 5.0, (), 1, gpu)),
        (*small.nodes, Node("n3", cost=1.0, unit_costs=(), capacity=(), capabilities=gpu)),
        small.conflicts,
        (),
    )
    base = strengthened(encode(market), market)
    upper = base.col_upper.copy()
    for t in ("t0", "t1", "t2"):
        upper[base.pair_columns[(t, "n3")]] = 0.0
    restricted = dataclasses.replace(base, col_upper=upper)
    solver = PlacementSolver(market, base)
    result = solver.solve(restricted)
    assert result.objective == pytest.approx(solve_max(restricted).objective, abs=1e-9)
    assert result.objective == pytest.approx(16.0)  # all four, on all four nodes
    assert solver.pool == [] and solver.local_cuts >= 1


def test_what_step_two_cannot_settle_goes_to_highs_whole(monkeypatch):
    market = triangle()
    base = strengthened(encode(market), market)
    monkeypatch.setattr(placement, "SEARCH_STEPS", 0)
    solver = PlacementSolver(market, base)
    assert solver.solve(base).objective == pytest.approx(12.0)
    assert solver.fallbacks == {"search": 1}
    # A share forced on, and a market with resources, are not for the projection either.
    lower = base.col_lower.copy()
    lower[base.pair_columns[("t0", "n1")]] = 1.0
    forced = dataclasses.replace(base, col_lower=lower)
    assert solver.solve(forced).objective == pytest.approx(solve_max(forced).objective)
    assert solver.fallbacks["forced share"] == 1
    with_resources = random_market(1, 5, 3)
    encoded = strengthened(encode(with_resources), with_resources)
    other = PlacementSolver(with_resources, encoded)
    other.solve(encoded)
    assert other.fallbacks == {"market": 1}


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


@settings(max_examples=150, deadline=None)
@given(crowded_markets())
def test_crowded_markets_reach_their_welfare_optimum_through_cuts(market):
    base = strengthened(encode(market), market)
    solver = PlacementSolver(market, base)
    got = solver.solve(base)
    event(f"rounds of R: {min(solver.rounds, 3)}{'+' if solver.rounds > 3 else ''}")
    event(f"to HiGHS whole: {sorted(solver.fallbacks)}")
    assert got.objective == pytest.approx(solve_max(base).objective, abs=1e-7)
    assert violation(base, got.x) <= 1e-6
    assert is_valid(market, base.decode(got.x, market))
    for cut in solver.pool:
        assert cut_holds_on_v(market, base, cut), cut
