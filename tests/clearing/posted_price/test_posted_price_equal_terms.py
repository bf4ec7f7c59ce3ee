"""IMPROVEMENT at equality: a challenger that offers a shared request exactly the holder's
price (or a shared node exactly its reward) improves nothing, in attempts 3 and 4."""

import pytest

from mercat.clearing.posted_price.proposal import Proposal, Standing
from mercat.clearing.posted_price.template import Outcome, mechanism_for
from mercat.market.generators import running_example
from mercat.market.model import Allocation

MARKET = running_example()
ON_N1 = Allocation.from_nodes({"t2": ["n1"]})
ON_N2 = Allocation.from_nodes({"t2": ["n2"]})


def holder(attempt):
    """t2 on n1 at π(t2) = 3, φ(n1) = 1; in attempt 4 tolerances π̄ = 4, φ̲ = 1."""
    if attempt == 4:
        return Proposal("bob", ON_N1, {"t2": 3}, {"n1": 1}, {"t2": 4}, {"n1": 1})
    return Proposal("bob", ON_N1, {"t2": 3}, {"n1": 1})


@pytest.mark.parametrize("attempt", [3, 4])
def test_the_holders_own_price_for_a_shared_request_is_no_improvement(attempt):
    # t2 is the only conflicting participant (n1 and n2 are different nodes).
    mechanism = mechanism_for(attempt)
    standing = Standing((holder(attempt),))
    same = Proposal("alice", ON_N2, {"t2": 3}, {"n2": 1})
    result = mechanism.submit(MARKET, standing, same)
    assert result.outcome is Outcome.KEPT
    assert result.reason == "request 't2' is not offered a lower price"
    assert result.standing == standing
    lower = Proposal("alice", ON_N2, {"t2": 2.5}, {"n2": 1})
    result = mechanism.submit(MARKET, standing, lower)
    # Attempt 4: Δ = 0.5 > ∇ = 0 (n1, the holder's only other participant, has no slack).
    assert result.outcome is Outcome.REPLACED
    assert result.standing.members == (lower,)


def test_a_shared_node_at_the_holders_reward_is_no_improvement_even_with_a_lower_price():
    # Both conflicting participants must gain: t2 is offered less, n1 exactly its reward.
    both = Proposal("alice", ON_N1, {"t2": 2}, {"n1": 1})
    for attempt in (3, 4):
        result = mechanism_for(attempt).submit(MARKET, Standing((holder(attempt),)), both)
        assert result.outcome is Outcome.KEPT
        assert result.reason == "node 'n1' is not offered a higher reward"


def test_a_repriced_holder_takes_from_a_nodes_slack_in_proportion_not_all_of_it():
    # The holder serves t1 on n1 and n2 (π = 4, π̄ = 4: no slack on t1) and pays n2 3 with
    # φ̲ = 1 (slack 2). A challenger serving t2 on n1 offers n1 0.5 more: Δ = 0.5 ≤ ∇ = 2,
    # so the holder matches and n2 gives up Δ·2/2 = 0.5 of its 2: reward 2.5, not φ̲ = 1.
    best = Proposal("bob", Allocation.from_nodes({"t1": ["n1", "n2"]}), {"t1": 4},
                    {"n1": 1, "n2": 3}, {"t1": 4}, {"n1": 1, "n2": 1})  # fmt: skip
    challenger = Proposal("alice", ON_N1, {"t2": 3}, {"n1": 1.5})
    result = mechanism_for(4).submit(MARKET, Standing((best,)), challenger)
    assert result.outcome is Outcome.REPRICED
    (repriced,) = result.standing.members
    assert repriced.rewards == {"n1": 1.5, "n2": 2.5}
    assert repriced.payments == {"t1": 4.0}
    assert repriced.margin == pytest.approx(best.margin)
