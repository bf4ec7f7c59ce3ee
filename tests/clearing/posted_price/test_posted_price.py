"""`posted-price`: the registered mechanism (contract), and seed 001's running example.

The running example (t1 worth 6 needs n1 and n2, t2 worth 4 runs on either, each node
costs 1): W(α1) = 4, W(α2) = W(α3) = 3; attempt 1 selects α1 with margin 4; attempt 2 has an
equilibrium at a lower-welfare allocation; attempt 3's best responses cycle between α1 and
α2/α3 with margin ≥ 1; attempt 4 converges to α1 with margin → 0.
"""

from itertools import pairwise
from typing import ClassVar

import pytest

from mercat.clearing.posted_price.dynamics import is_equilibrium, run_dynamics
from mercat.clearing.posted_price.makers import PerfectInformation
from mercat.clearing.posted_price.mechanism import PostedPrice
from mercat.clearing.posted_price.pricing import zero_margin_proposal
from mercat.clearing.posted_price.proposal import Standing
from mercat.clearing.posted_price.template import mechanism_for
from mercat.errors import InvalidMarketError, InvalidParameterError, UnknownNameError
from mercat.market.economics import ir_violations, welfare
from mercat.market.generators import random_market, running_example, running_example_allocations
from tests.clearing.contract import MechanismContract

ALPHA = running_example_allocations()
TICK = 0.01


class TestPostedPrice(MechanismContract):
    mechanism = PostedPrice
    options: ClassVar[dict] = {"tick": 0.01}  # coarse steps keep the contract's ten markets quick


def name_of(allocation):
    return next(k for k, a in ALPHA.items() if a == allocation)


def dynamics(attempt, rounds, opening=(), tick=TICK):
    makers = [PerfectInformation(), PerfectInformation()]
    return run_dynamics(
        running_example(), makers, attempt=attempt, rounds=rounds, tick=tick, opening=opening
    )


def zero_margin_holder(name, attempt):
    """The holder of α at zero-margin IR prices; in attempt 4 with truthful tolerances."""
    return zero_margin_proposal(running_example(), ALPHA[name], tolerances=attempt == 4)


def test_running_example_welfare():
    market = running_example()
    assert {k: welfare(market, a) for k, a in ALPHA.items()} == {
        "α∅": 0,
        "α1": 4,
        "α2": 3,
        "α3": 3,
    }


def test_attempt_1_selects_alpha_1_with_margin_4():
    trace = dynamics(1, rounds=10)
    assert trace.converged
    assert name_of(trace.standing.allocation) == "α1"
    assert trace.standing.margin == pytest.approx(4.0)
    assert trace.standing.payments == {"t1": 6.0}
    assert trace.standing.rewards == {"n1": 1.0, "n2": 1.0}
    assert trace.settlement.payoffs == {"mm1": pytest.approx(4.0)}


@pytest.mark.parametrize("name", ["α∅", "α1", "α2", "α3"])
def test_attempt_2_every_zero_margin_outcome_is_an_equilibrium(name):
    # Including α∅ (welfare 0) and α2, α3 (welfare 3 < 4): no maker can undercut a zero margin.
    holder = zero_margin_holder(name, 2)
    assert is_equilibrium(running_example(), Standing((holder,)), mechanism_for(2), tick=TICK)


@pytest.mark.parametrize("name", ["α∅", "α2"])
def test_attempt_2_dynamics_stay_at_a_lower_welfare_allocation(name):
    trace = dynamics(2, rounds=50, opening=[zero_margin_holder(name, 2)])
    assert trace.converged and trace.rounds == 1
    assert name_of(trace.standing.allocation) == name
    assert trace.steps[-1].welfare < 4


def test_attempt_2_from_scratch_undercuts_the_margin_at_alpha_1():
    trace = dynamics(2, rounds=1000)
    assert trace.converged
    assert name_of(trace.standing.allocation) == "α1"
    assert 0 <= trace.standing.margin <= TICK + 1e-9
    margins = [s.margin for s in trace.steps if s.accepted]
    assert all(b < a for a, b in pairwise(margins))


@pytest.mark.parametrize("name", ["α∅", "α1", "α2", "α3"])
def test_attempt_3_has_no_zero_margin_equilibrium(name):
    holder = zero_margin_holder(name, 3)
    assert not is_equilibrium(running_example(), Standing((holder,)), mechanism_for(3), tick=TICK)


def test_attempt_3_best_responses_cycle_with_margin_at_least_one():
    trace = dynamics(3, rounds=1000)
    assert not trace.converged and trace.cycle is not None
    first, period = trace.cycle
    # The round-end standing repeats: the makers' best responses go round this loop for ever.
    loop = [s for s in trace.steps if first < s.round <= first + period]
    names = [name_of(s.standing.allocation) for s in loop]
    assert "α1" in names and {"α2", "α3"} <= set(names)
    switches = {(a, b) for a, b in pairwise(names) if a != b}
    assert switches <= {("α1", "α2"), ("α1", "α3"), ("α2", "α1"), ("α3", "α1")}
    # The seed: "the margin would be at least 1" (one tick less, with a smallest step).
    assert min(s.margin for s in trace.steps) >= 1 - TICK
    market = running_example()
    for s in trace.steps:
        standing = s.standing
        assert not ir_violations(market, standing.allocation, standing.payments, standing.rewards)


def test_attempt_4_only_alpha_1_is_a_zero_margin_equilibrium():
    verdicts = {
        name: is_equilibrium(
            running_example(), Standing((zero_margin_holder(name, 4),)), mechanism_for(4), tick=TICK
        )
        for name in ALPHA
    }
    assert verdicts == {"α∅": False, "α1": True, "α2": False, "α3": False}


@pytest.mark.parametrize("tick", [0.1, 0.01, 0.001])
def test_attempt_4_converges_to_alpha_1_with_margin_going_to_zero(tick):
    trace = dynamics(4, rounds=100_000, tick=tick)
    assert trace.converged
    assert name_of(trace.standing.allocation) == "α1"
    # Three participants each improve by a tick per undercut: the margin ends below 3 ticks.
    assert 0 <= trace.standing.margin <= 3 * tick + 1e-9
    assert not trace.settlement.failed


@pytest.mark.parametrize("name", ["α∅", "α2"])
def test_attempt_4_leaves_a_lower_welfare_opening(name):
    trace = dynamics(4, rounds=1000, opening=[zero_margin_holder(name, 4)])
    assert trace.converged
    assert name_of(trace.standing.allocation) == "α1"
    assert trace.standing.margin <= 3 * TICK + 1e-9


def test_clear_reports_the_final_standing_and_its_dynamics():
    result = PostedPrice(tick=TICK).clear(running_example(), seed=1)
    assert result.allocation == ALPHA["α1"]
    assert result.bound is None and not result.proven
    info = result.diagnostics
    assert (
        info["converged"]
        and info["attempt"] == 4
        and info["makers"]
        == [
            "perfect-information",
            "perfect-information",
        ]
    )
    assert 0 <= info["standing_margin"] <= 3 * TICK + 1e-9
    assert result.payments["t1"] - result.rewards["n1"] - result.rewards["n2"] == pytest.approx(
        info["standing_margin"]
    )


def test_clear_reaches_the_optimum_on_a_random_market():
    from mercat.clearing.optimal import solve_welfare

    market = random_market(4, 10, 5)
    result = PostedPrice(tick=0.001).clear(market)
    best = solve_welfare(market).welfare
    assert welfare(market, result.allocation) >= 0.99 * best
    assert not ir_violations(market, result.allocation, result.payments, result.rewards)


def test_options_are_checked():
    with pytest.raises(InvalidParameterError, match="tick"):
        PostedPrice(tick=0)
    with pytest.raises(InvalidParameterError, match="makers"):
        PostedPrice(makers=0)
    with pytest.raises(UnknownNameError, match="unknown market-maker strategy 'oracle'"):
        PostedPrice(makers=["oracle"])
    divisible = random_market(0, 3, 2, divisible=True)
    with pytest.raises(InvalidMarketError, match="indivisible"):
        PostedPrice().clear(divisible)


def test_noisy_makers_are_seeded():
    mech = PostedPrice(makers=["noisy-estimates", "perfect-information"], tick=0.05, sigma=0.3)
    market = random_market(2, 6, 3)
    first, again = mech.clear(market, seed=5), mech.clear(market, seed=5)
    assert first == again and first.diagnostics == again.diagnostics
