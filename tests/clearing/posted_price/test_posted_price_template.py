"""The sequential-improvement template: IMPROVEMENT of attempts 1-4 on hand-made proposals,
attempt 4's re-pricing, specialization, validity, and malformed proposals."""

import itertools

import pytest
from hypothesis import given, settings

from mercat.clearing.posted_price.dynamics import settle
from mercat.clearing.posted_price.proposal import (
    Proposal,
    Standing,
    compatible,
    shared_participants,
)
from mercat.clearing.posted_price.template import Outcome, mechanism_for
from mercat.errors import InvalidParameterError, InvalidProposalError
from mercat.market.brute_force import valid_allocations
from mercat.market.constraints import is_valid
from mercat.market.generators import running_example
from mercat.market.model import Allocation, Conflict, Market, Node, Request
from tests.strategies import markets

MARKET = running_example()
A1 = Allocation.from_nodes({"t1": ["n1", "n2"]})
A2 = Allocation.from_nodes({"t2": ["n1"]})
A3 = Allocation.from_nodes({"t2": ["n2"]})


def holder(attempt=4):
    """α1 with π(t1) = 4, φ = 1 each (margin 2); tolerances π̄(t1) = 6, φ̲ = 1 in attempt 4."""
    if attempt == 4:
        return Proposal("bob", A1, {"t1": 4}, {"n1": 1, "n2": 1}, {"t1": 6}, {"n1": 1, "n2": 1})
    return Proposal("bob", A1, {"t1": 4}, {"n1": 1, "n2": 1})


def submit(attempt, best, challenger, market=MARKET, specialization=False):
    mechanism = mechanism_for(attempt, specialization=specialization)
    standing = best if isinstance(best, Standing) else Standing((best,))
    return mechanism.submit(market, standing, challenger)


def test_attempt_1_only_the_central_maker_revises():
    other = Proposal("alice", A2, {"t2": 4}, {"n1": 1})
    assert submit(1, holder(1), other).outcome is Outcome.KEPT
    own = Proposal("bob", A2, {"t2": 4}, {"n1": 1})
    assert submit(1, holder(1), own).outcome is Outcome.REPLACED


def test_attempt_2_compares_margins_only():
    lower = Proposal("alice", Allocation.empty())  # α∅ with margin 0 beats margin 2
    assert submit(2, holder(2), lower).outcome is Outcome.REPLACED
    higher = Proposal("alice", A2, {"t2": 4}, {"n1": 1})  # margin 3
    assert submit(2, holder(2), higher).outcome is Outcome.KEPT
    equal = Proposal("alice", A2, {"t2": 3}, {"n1": 1})  # ties keep the holder
    assert submit(2, holder(2), equal).outcome is Outcome.KEPT


@pytest.mark.parametrize(
    ("reward", "outcome"), [(1.5, Outcome.REPLACED), (1.0, Outcome.KEPT), (0.5, Outcome.KEPT)]
)
def test_attempt_3_needs_a_strict_improvement_for_the_conflicting_node(reward, outcome):
    challenger = Proposal("alice", A2, {"t2": 4}, {"n1": reward})  # conflicts on n1 only
    result = submit(3, holder(3), challenger)
    assert result.outcome is outcome


def test_attempt_3_keeps_a_holder_that_shares_no_participant():
    market = Market(
        (Request("a", 5.0), Request("b", 4.0)),
        (Node("x", cost=1.0), Node("y", cost=1.0)),
        (Conflict("a", "b", "market"),),
    )
    best = Proposal("bob", Allocation.from_nodes({"a": ["x"]}), {"a": 5}, {"x": 1})
    other = Proposal("alice", Allocation.from_nodes({"b": ["y"]}), {"b": 1}, {"y": 3})
    for attempt in (3, 4):
        result = submit(attempt, best, other, market)
        assert result.outcome is Outcome.KEPT
        assert "no conflicting participant" in result.reason


def test_attempt_4_replaces_when_the_improvement_exceeds_the_slack():
    # Δ = φ_i(n1) - φ_b(n1) = 2.5; ∇ = (6 - 4) on t1 + 0 on n2 = 2 < Δ.
    challenger = Proposal("alice", A2, {"t2": 4}, {"n1": 3.5})
    result = submit(4, holder(), challenger)
    assert result.outcome is Outcome.REPLACED
    assert result.standing.members == (challenger,)


def test_attempt_4_reprices_the_holder_when_its_slack_covers_the_improvement():
    # Δ = 1 ≤ ∇ = 2: the holder gives n1 the challenger's reward 2 and takes Δ from t1's
    # slack (n2 has none), so its margin stays 2.
    challenger = Proposal("alice", A2, {"t2": 3}, {"n1": 2})
    result = submit(4, holder(), challenger)
    assert result.outcome is Outcome.REPRICED
    (b,) = result.standing.members
    assert b.maker == "bob" and b.allocation == A1
    assert b.payments == {"t1": 5.0} and b.rewards == {"n1": 2.0, "n2": 1.0}
    assert b.margin == pytest.approx(holder().margin)
    assert b.max_payments == {"t1": 6.0} and b.min_rewards == {"n1": 1.0, "n2": 1.0}
    # Matching again exhausts the slack: ∇ = 1, Δ = 1 still re-prices, Δ = 1.5 replaces.
    again = submit(4, result.standing, Proposal("alice", A2, {"t2": 3}, {"n1": 3}))
    assert again.outcome is Outcome.REPRICED
    assert again.standing.members[0].payments == {"t1": 6.0}
    last = submit(4, again.standing, Proposal("alice", A2, {"t2": 3}, {"n1": 3.5}))
    assert last.outcome is Outcome.REPLACED


def test_attempt_4_reprices_in_proportion_to_each_participants_slack():
    market = Market(
        (Request("a", 5.0), Request("b", 5.0), Request("c", 5.0)),
        (Node("x", cost=1.0),),
    )
    alloc = Allocation.from_nodes({"a": ["x"], "b": ["x"], "c": ["x"]})
    best = Proposal("bob", alloc, {"a": 2, "b": 4, "c": 3}, {"x": 1}, {"a": 5, "b": 5, "c": 5})
    # The challenger serves c for 1 less and pays x 0.5 more: Δ = 1.5, ∇ = 3 (a) + 1 (b) = 4.
    challenger = Proposal("alice", Allocation.from_nodes({"c": ["x"]}), {"c": 2}, {"x": 1.5})
    result = submit(4, best, challenger, market)
    assert result.outcome is Outcome.REPRICED
    (b,) = result.standing.members
    assert b.payments == pytest.approx({"a": 2 + 1.5 * 3 / 4, "b": 4 + 1.5 * 1 / 4, "c": 2})
    assert b.rewards == {"x": 1.5}
    assert b.margin == pytest.approx(best.margin)


def test_an_empty_holder_binds_in_attempts_1_and_2_only():
    empty = Proposal("bob", Allocation.empty())
    challenger = Proposal("alice", A1, {"t1": 6}, {"n1": 1, "n2": 1})
    assert submit(1, empty, challenger).outcome is Outcome.KEPT
    assert submit(2, empty, challenger).outcome is Outcome.KEPT
    assert submit(3, empty, challenger).outcome is Outcome.OPENED
    assert submit(4, empty, challenger).outcome is Outcome.OPENED


def test_proposals_outside_v_are_rejected_and_change_nothing():
    half = Proposal("alice", Allocation.from_nodes({"t1": ["n1"]}), {"t1": 1}, {"n1": 1})
    result = submit(4, holder(), half)
    assert result.outcome is Outcome.REJECTED and "needs 2 distinct nodes" in result.reason
    assert result.standing.members == (holder(),)
    stranger = Proposal("alice", Allocation.from_nodes({"t2": ["n9"]}), {"t2": 1}, {"n9": 1})
    result = submit(3, Standing.empty(), stranger)
    assert result.outcome is Outcome.REJECTED and "unknown node 'n9'" in result.reason


def test_the_first_proposal_opens_and_run_processes_a_list():
    mechanism = mechanism_for(4)
    proposals = [
        Proposal("alice", A2, {"t2": 4}, {"n1": 1}, {"t2": 4}, {"n1": 1}),
        Proposal("bob", A1, {"t1": 5}, {"n1": 1.5, "n2": 1}, {"t1": 6}, {"n1": 1, "n2": 1}),
    ]
    standing, log = mechanism.run(MARKET, proposals)
    assert [s.outcome for s in log] == [Outcome.OPENED, Outcome.REPLACED]
    assert standing.holders() == ("bob",)


def test_malformed_proposals_raise():
    with pytest.raises(InvalidProposalError, match="which its allocation does not serve"):
        Proposal("alice", A2, {"t1": 1}, {"n1": 1})
    with pytest.raises(InvalidProposalError, match="does not use"):
        Proposal("alice", A2, {"t2": 1}, {"n2": 1})
    with pytest.raises(InvalidProposalError, match="maximum payment of 't2'"):
        Proposal("alice", A2, {"t2": 3}, {"n1": 1}, {"t2": 2})
    with pytest.raises(InvalidProposalError, match="minimum reward of 'n1'"):
        Proposal("alice", A2, {"t2": 3}, {"n1": 1}, None, {"n1": 2})
    with pytest.raises(InvalidProposalError, match="finite number"):
        Proposal("alice", A2, {"t2": float("nan")}, {"n1": 1})
    with pytest.raises(InvalidProposalError, match="maker id"):
        Proposal("", A2)
    with pytest.raises(InvalidParameterError, match="specialization"):
        mechanism_for(2, specialization=True)
    with pytest.raises(InvalidParameterError, match="attempt must be one of"):
        mechanism_for(5)


def test_missing_prices_are_zero_and_tolerances_default_to_prices():
    p = Proposal("alice", A1, {"t1": 4})
    assert p.rewards == {"n1": 0.0, "n2": 0.0}
    assert p.max_payments == {"t1": 4.0} and p.slack == 0
    assert p.margin == 4


# --- specialization ----------------------------------------------------------------------

TWO = Market(
    (Request("a", 5.0), Request("b", 4.0)),
    (Node("x", cost=1.0), Node("y", cost=1.0)),
)


def test_specialization_appends_compatible_proposals_and_merges_the_conflicting():
    a_on_x = Proposal("m1", Allocation.from_nodes({"a": ["x"]}), {"a": 5}, {"x": 1}, {"a": 5})
    b_on_y = Proposal("m2", Allocation.from_nodes({"b": ["y"]}), {"b": 4}, {"y": 1}, {"b": 4})
    first = submit(4, Standing((a_on_x,)), b_on_y, TWO, specialization=True)
    assert first.outcome is Outcome.APPENDED and len(first.standing.members) == 2
    # A proposal serving both conflicts with both members; they are one holder with ∇ = 0.
    both = Proposal(
        "m3", Allocation.from_nodes({"a": ["x"], "b": ["x"]}), {"a": 4, "b": 3.5}, {"x": 1.5}
    )
    second = submit(4, first.standing, both, TWO, specialization=True)
    assert second.outcome is Outcome.REPLACED
    assert second.standing.members == (both,)
    # Without the extension the non-conflicting proposal is discarded.
    alone = submit(4, Standing((a_on_x,)), b_on_y, TWO)
    assert alone.outcome is Outcome.KEPT


def test_specialization_reprices_a_group_keeping_its_total_margin():
    a_on_x = Proposal("m1", Allocation.from_nodes({"a": ["x"]}), {"a": 3}, {"x": 1}, {"a": 5})
    b_on_y = Proposal("m2", Allocation.from_nodes({"b": ["y"]}), {"b": 2}, {"y": 1}, {"b": 4})
    standing = Standing((a_on_x, b_on_y))
    # Shares a and y: Δ = (3 - 2.5) + (1.5 - 1) = 1; ∇ = 2 on b: re-priced.
    challenger = Proposal("m3", Allocation.from_nodes({"a": ["y"]}), {"a": 2.5}, {"y": 1.5})
    result = submit(4, standing, challenger, TWO, specialization=True)
    assert result.outcome is Outcome.REPRICED
    assert result.standing.margin == pytest.approx(standing.margin)
    prices = result.standing.payments
    assert prices["a"] == 2.5 and prices["b"] == pytest.approx(3.0)
    assert result.standing.rewards == {"x": 1.0, "y": 1.5}


def test_settle_fails_members_that_are_not_individually_rational():
    greedy = Proposal("bob", A1, {"t1": 7}, {"n1": 1, "n2": 1})  # t1 is worth 6
    settled = settle(MARKET, Standing((greedy,)), penalty=2.5)
    assert settled.failed == ("bob",) and settled.payoffs == {"bob": -2.5}
    assert settled.allocation == Allocation.empty() and not settled.payments
    assert "request 't1' has utility -1" in settled.reasons[0]
    fair = Proposal("bob", A1, {"t1": 6}, {"n1": 1, "n2": 1})
    assert settle(MARKET, Standing((fair,))).payoffs == {"bob": 4.0}


def test_a_node_on_another_workload_is_another_participant():
    market = Market(
        (Request("a", 5.0, (1.0,)), Request("b", 4.0, (1.0,))),
        (Node("x", cost=1.0, unit_costs=(0.5,), capacity=(2.0,)),),
        resources=("cpu",),
    )
    one = Proposal("m1", Allocation.from_nodes({"a": ["x"]}), {"a": 5}, {"x": 1.5})
    two = Proposal("m2", Allocation.from_nodes({"a": ["x"], "b": ["x"]}), {"a": 4}, {"x": 3})
    assert shared_participants(one, two) == ({"a"}, {"x"})
    assert shared_participants(one, two, by_workload=True) == ({"a"}, frozenset())
    # In the market (it has resources) the comparison is on a alone: ∇ = 0 on x < Δ = 1.
    result = submit(4, one, two, market)
    assert result.outcome is Outcome.REPLACED and "Δ = 1" in result.reason


@settings(max_examples=40, deadline=None)
@given(markets(max_requests=4, max_nodes=3))
def test_compatible_is_joint_validity_for_disjoint_proposals(market):
    allocations = list(itertools.islice(valid_allocations(market), 25))
    for a, b in itertools.combinations(allocations, 2):
        overlap = a.served_requests & b.served_requests or a.used_nodes & b.used_nodes
        jointly_valid = not overlap and bool(is_valid(market, Allocation(a.shares + b.shares)))
        assert compatible(market, Proposal("m1", a), Proposal("m2", b)) == jointly_valid
