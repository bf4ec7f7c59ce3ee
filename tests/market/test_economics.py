"""Welfare, margin, surplus, utilities and IR as seed 001 defines them."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.market.brute_force import valid_allocations
from mercat.market.economics import (
    budget_balanced,
    individually_rational,
    ir_violations,
    margin,
    node_cost,
    node_utility,
    non_extractive,
    request_utility,
    summarize,
    surplus,
    utilities,
    welfare,
    zero_margin_prices,
)
from mercat.market.generators import running_example
from mercat.market.model import Allocation, Clearing, Market, Node, Request
from tests.strategies import allocations_of, markets, payment_rules

ALPHA_1 = Allocation.from_nodes({"t1": ["n1", "n2"]})
ALPHA_2 = Allocation.from_nodes({"t2": ["n1"]})
ALPHA_3 = Allocation.from_nodes({"t2": ["n2"]})


def test_running_example_welfare():
    m = running_example()
    assert welfare(m, ALPHA_1) == 4
    assert welfare(m, ALPHA_2) == welfare(m, ALPHA_3) == 3
    assert welfare(m, Allocation.empty()) == 0


def test_running_example_utilities_from_the_seed():
    m = running_example()
    # α2 with π(t2) = 2: t2 gains 4 - 2 = 2; with φ(n1) = 2, n1 gains 2 - 1 = 1.
    assert request_utility(m, ALPHA_2, {"t2": 2.0}, "t2") == 2
    assert request_utility(m, ALPHA_2, {"t2": 2.0}, "t1") == 0
    assert node_utility(m, ALPHA_2, {"n1": 2.0}, "n1") == 1
    assert node_utility(m, ALPHA_2, {"n1": 2.0}, "n2") == 0


def test_attempt_one_extracts_the_whole_welfare():
    # The centralized market-maker charges values and pays costs: M = W(α1) = 4, IR.
    m = running_example()
    pay, rew = {"t1": 6.0}, {"n1": 1.0, "n2": 1.0}
    assert margin(pay, rew) == 4 == welfare(m, ALPHA_1)
    assert surplus(m, ALPHA_1, pay, rew) == 0
    assert individually_rational(m, ALPHA_1, pay, rew)
    assert budget_balanced(pay, rew) and not non_extractive(pay, rew)


def test_ir_violations_name_the_participant():
    m = running_example()
    # Charging t1 more than its value, and paying a node less than its cost.
    found = ir_violations(m, ALPHA_1, {"t1": 7.0}, {"n1": 0.5, "n2": 1.0})
    assert found == ["request 't1' has utility -1 < 0", "node 'n1' has utility -0.5 < 0"]
    # An unserved request that pays has negative utility (it pays for nothing).
    assert not individually_rational(m, ALPHA_1, {"t1": 6.0, "t2": 1.0}, {"n1": 1.0, "n2": 1.0})


def test_subsidised_rules_are_not_budget_balanced():
    pay, rew = {"t1": 6.0}, {"n1": 3.5, "n2": 3.5}
    assert margin(pay, rew) == -1
    assert not budget_balanced(pay, rew) and non_extractive(pay, rew)


def test_node_cost_adds_fixed_and_per_unit_costs():
    m = Market(
        requests=(Request("t", 5.0, (2.0,)),),
        nodes=(Node("n", cost=1.0, unit_costs=(0.5,), capacity=(4.0,)),),
        resources=("cpu",),
        divisible=True,
    )
    half = Allocation.from_shares({"t": {"n": 0.5}})
    assert node_cost(m, half, "n") == 1.0 + 0.5 * 1.0
    assert welfare(m, half) == 2.5 - 1.5
    assert node_cost(m, Allocation.empty(), "n") == 0


@settings(max_examples=60, deadline=None)
@given(markets(max_requests=3, max_nodes=2), st.data())
def test_surplus_is_the_sum_of_utilities(market, data):
    allocation = data.draw(allocations_of(market))
    pay, rew = data.draw(payment_rules(market, allocation))
    total = sum(utilities(market, allocation, pay, rew).values())
    assert surplus(market, allocation, pay, rew) == pytest.approx(total, abs=1e-9)
    assert individually_rational(market, allocation, pay, rew) == all(
        u >= -1e-9 for u in utilities(market, allocation, pay, rew).values()
    )


@settings(max_examples=60, deadline=None)
@given(markets(max_requests=3, max_nodes=3))
def test_zero_margin_prices_are_ir_whenever_welfare_is_non_negative(market):
    for allocation in valid_allocations(market):
        if welfare(market, allocation) < 0:
            continue
        pay, rew = zero_margin_prices(market, allocation)
        assert margin(pay, rew) == pytest.approx(0, abs=1e-9)
        assert individually_rational(market, allocation, pay, rew)


def test_summary_reports_checks_and_unknown_ids():
    m = running_example()
    good = summarize(m, Clearing("x", ALPHA_1, {"t1": 2.0}, {"n1": 1.0, "n2": 1.0}))
    assert (good.welfare, good.margin, good.surplus) == (4, 0, 4)
    assert good.valid and good.individually_rational and good.budget_balanced
    assert good.as_dict()["served_requests"] == 1
    bad = summarize(m, Clearing("x", Allocation.from_nodes({"t9": ["n1"]})))
    assert not bad.valid and "unknown request 't9'" in bad.validity_reasons


def test_ir_tolerance_is_relative_to_the_amounts_above_one_and_absolute_below():
    market = Market(
        (Request("big", 1e6), Request("small", 0.5)),
        (Node("rich", cost=1e6), Node("poor", cost=0.5)),
    )
    served = Allocation.from_nodes({"big": ["rich"], "small": ["poor"]})
    rewards = {"rich": 1e6, "poor": 0.5}
    # 1e-4 below a value of 1e6 is rounding (1e-10 relative); 1e-2 is not (1e-8).
    assert not ir_violations(market, served, {"big": 1e6 + 1e-4, "small": 0.5}, rewards)
    assert ir_violations(market, served, {"big": 1e6 + 1e-2, "small": 0.5}, rewards)
    # Below 1 the slack is absolute: 5e-10 passes, 2e-9 does not.
    assert not ir_violations(market, served, {"big": 1e6, "small": 0.5 + 5e-10}, rewards)
    assert ir_violations(market, served, {"big": 1e6, "small": 0.5 + 2e-9}, rewards)
    # Nodes alike, relative to their reward.
    payments = {"big": 1e6, "small": 0.5}
    assert not ir_violations(market, served, payments, {"rich": 1e6 - 1e-4, "poor": 0.5})
    assert ir_violations(market, served, payments, {"rich": 1e6 - 1e-2, "poor": 0.5})


def test_budget_balance_tolerance_is_relative_to_what_requests_pay():
    pay = {"t": 1e6}
    assert budget_balanced(pay, {"n": 1e6 + 1e-4})  # margin -1e-4 on 1e6: rounding
    assert not budget_balanced(pay, {"n": 1e6 + 1e-2})
    assert non_extractive({"t": 1e6 + 1e-4}, {"n": 1e6})
    assert not non_extractive({"t": 1e6 + 1e-2}, {"n": 1e6})


def test_zero_margin_prices_charge_nothing_when_nothing_served_is_worth_anything():
    market = Market((Request("a", 0.0), Request("b", 0.0)), (Node("x"),))
    both = Allocation.from_nodes({"a": ["x"], "b": ["x"]})
    assert zero_margin_prices(market, both) == ({"a": 0.0, "b": 0.0}, {"x": 0.0})
