"""Stackelberg pricing (seed 002, §III.C): the exact leader's price against its readable
twin, the followers' best responses, and bad input."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mercat.clearing.stackelberg import demand, stackelberg_price, stackelberg_price_reference
from mercat.cli import app
from mercat.errors import InvalidParameterError

scales = st.lists(st.floats(0.2, 20.0), min_size=1, max_size=25)


@settings(max_examples=80, deadline=None)
@given(
    a=scales,
    cost=st.floats(0.05, 5.0),
    capacity=st.one_of(st.just(math.inf), st.floats(0.5, 80.0)),
    penalty=st.sampled_from([0.0, 0.3]),
)
def test_the_exact_price_earns_what_the_grid_search_finds_and_never_less(
    a, cost, capacity, penalty
):
    exact = stackelberg_price(a, cost, capacity, penalty)
    reference = stackelberg_price_reference(a, cost, capacity, penalty)
    assert exact.profit >= reference.profit - 1e-9 * max(1.0, abs(reference.profit))
    assert exact.profit <= reference.profit + 1e-6 * max(1.0, abs(reference.profit))
    assert exact.sold <= capacity * (1 + 1e-9)


def test_one_requester_in_closed_form():
    # Π(P) = (P − c)(a/P − 1) peaks at P = sqrt(a c): a = 9, c = 1 gives P = 3, C = 2, Π = 4.
    out = stackelberg_price([9.0], 1.0)
    assert out.price == pytest.approx(3.0)
    assert out.demands[0] == pytest.approx(2.0)
    assert out.profit == pytest.approx(4.0)
    assert out.utilities[0] == pytest.approx(9 * math.log(3) - 6)  # eq. 3


def test_followers_best_respond_and_nobody_buys_above_their_scale():
    out = stackelberg_price([1.0, 2.0, 12.0], 1.5)
    c = demand(np.array([1.0, 2.0, 12.0]), out.price)
    assert np.array_equal(out.demands, c)
    assert out.demands[0] == 0.0  # a = 1 is below any price above the cost
    # no follower gains by buying a little more or less than its response
    for a, ci in zip([1.0, 2.0, 12.0], out.demands, strict=True):
        u = lambda x, a=a: a * math.log1p(x) - out.price * x  # noqa: E731
        assert u(ci) >= u(ci + 1e-3) - 1e-12 and (ci == 0 or u(ci) >= u(ci - 1e-3) - 1e-12)


def test_capacity_raises_the_price_until_demand_fits():
    free = stackelberg_price([3.0, 5.0, 8.0], 1.0)
    tight = stackelberg_price([3.0, 5.0, 8.0], 1.0, capacity=1.0)
    assert tight.capacity_binding and not free.capacity_binding
    assert tight.price > free.price
    assert tight.sold == pytest.approx(1.0)


def test_an_expected_sla_penalty_acts_as_a_higher_cost():
    assert stackelberg_price([4.0, 6.0], 1.0, expected_penalty=0.5).price == pytest.approx(
        stackelberg_price([4.0, 6.0], 1.5).price
    )


def test_nobody_buys_when_every_scale_is_below_the_cost():
    out = stackelberg_price([0.5, 0.8], 1.0)
    assert out.sold == 0.0 and out.profit == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], 1.0), "one scale"),
        (([1.0, -2.0], 1.0), "satisfaction"),
        (([1.0, True], 1.0), "satisfaction"),
        (([1.0], -1.0), "unit cost"),
        (([1.0], 1.0, 0.0), "capacity"),
        (([1.0], 0.0), "zero marginal cost"),
        (([1.0], math.nan), "unit cost"),
    ],
)
def test_bad_input_is_refused(args, message):
    with pytest.raises(InvalidParameterError, match=message):
        stackelberg_price(*args)


def test_the_price_command():
    out = CliRunner().invoke(app, ["price", "9", "--cost", "1", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["summary"]["price"] == pytest.approx(3.0)
    bad = CliRunner().invoke(app, ["price", "9", "--cost", "1", "--violation", "2"])
    assert bad.exit_code == 2 and "violation" in bad.output
