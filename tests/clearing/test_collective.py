"""Seed 000's selection as a clearing mechanism: the contract, and the draws' distribution."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mercat.clearing.collective import CollectiveSelection
from mercat.errors import InvalidMarketError
from mercat.market.model import Market, Node, Request
from mercat.testing.contract import MechanismContract


class TestCollectiveSelection(MechanismContract):
    mechanism = CollectiveSelection


class TestUniformSelection(MechanismContract):
    mechanism = CollectiveSelection
    options: ClassVar[dict[str, Any]] = {"weighted": False}


def _market(weights, replicas=1, requests=1):
    return Market(
        requests=[Request(f"t{i}", value=10.0, replicas=replicas) for i in range(requests)],
        nodes=[Node(f"n{j}", weight=w) for j, w in enumerate(weights)],
    )


def test_weighted_draws_are_proportional_to_weight():
    market = _market([1.0, 2.0, 5.0, 0.0])
    rng = np.random.default_rng(1)
    counts = dict.fromkeys(("n0", "n1", "n2", "n3"), 0)
    draws = 8000
    for _ in range(draws):
        clearing = CollectiveSelection().clear(market, seed=rng)
        (node,) = clearing.allocation.nodes_of("t0")
        counts[node] += 1
    assert counts["n3"] == 0  # weight 0 is never drawn
    for node, weight in (("n0", 1), ("n1", 2), ("n2", 5)):
        p = weight / 8
        sd = (p * (1 - p) / draws) ** 0.5
        assert abs(counts[node] / draws - p) < 5 * sd


def test_second_pick_is_weighted_among_the_rest():
    # With replicas 2 among weights (1, 1, 8), the pair {n0, n1} has probability
    # 2 * (1/10) * (1/9) = 0.0222 under sequential weighted draws without replacement.
    market = _market([1.0, 1.0, 8.0], replicas=2)
    rng = np.random.default_rng(2)
    draws = 6000
    both_light = sum(
        CollectiveSelection().clear(market, seed=rng).allocation.nodes_of("t0") == {"n0", "n1"}
        for _ in range(draws)
    )
    p = 2 * (1 / 10) * (1 / 9)
    assert abs(both_light / draws - p) < 5 * (p * (1 - p) / draws) ** 0.5


def test_uniform_ignores_weights():
    market = _market([1.0, 100.0])
    rng = np.random.default_rng(3)
    draws = 4000
    heavy = sum(
        CollectiveSelection(weighted=False).clear(market, seed=rng).allocation.nodes_of("t0")
        == {"n1"}
        for _ in range(draws)
    )
    assert abs(heavy / draws - 0.5) < 5 * (0.25 / draws) ** 0.5


def test_too_few_nodes_leave_a_request_unserved_and_capacity_binds():
    market = Market(
        requests=[Request("a", value=5, demand=(2.0,)), Request("b", value=5, demand=(2.0,))],
        nodes=[Node("n", unit_costs=(0.0,), capacity=(3.0,))],
        resources=("cpu",),
    )
    clearing = CollectiveSelection().clear(market, seed=0)
    assert clearing.allocation.served_requests == {"a"}  # b no longer fits on n


def test_requests_pay_their_nodes_asks_and_fixed_costs_are_shared():
    market = Market(
        requests=[Request("a", value=10, demand=(1.0,)), Request("b", value=10, demand=(3.0,))],
        nodes=[Node("n", cost=2.0, unit_costs=(0.5,), capacity=(10.0,))],
        resources=("cpu",),
    )
    clearing = CollectiveSelection().clear(market, seed=0)
    assert clearing.payment("a") == pytest.approx(0.5 + 1.0)
    assert clearing.payment("b") == pytest.approx(1.5 + 1.0)
    assert clearing.reward("n") == pytest.approx(2.0 + 0.5 * 4)


def test_a_request_that_cannot_pay_the_ask_is_not_served():
    market = Market(requests=[Request("a", value=1.0)], nodes=[Node("n", cost=2.0)], resources=())
    assert not CollectiveSelection().clear(market, seed=0).allocation.served_requests


def test_divisible_markets_are_refused():
    market = Market(
        requests=[Request.bidding("u", 1.0, 2.0)],
        nodes=[Node("p", unit_costs=(0.1,), capacity=(5.0,))],
        resources=("bw",),
        divisible=True,
    )
    with pytest.raises(InvalidMarketError, match="divisible"):
        CollectiveSelection().clear(market)


def test_a_node_of_weight_zero_never_makes_up_a_replica_set():
    # Two replicas, but only one node of positive weight: the request is not served (and
    # the draw does not wait forever for the node of weight 0 to be accepted).
    clearing = CollectiveSelection().clear(_market([3.0, 0.0], replicas=2), seed=1)
    assert clearing.allocation.served_requests == frozenset()
    uniform = CollectiveSelection(weighted=False).clear(_market([3.0, 0.0], replicas=2), seed=1)
    assert uniform.allocation.nodes_of("t0") == {"n0", "n1"}


def test_one_node_of_an_exclusive_group_serves_and_the_others_stay_out():
    # n0 and n1 are one machine: whichever is drawn first, the next requests go to it or to
    # n2, never to its twin; no request is turned away while a node can take it.
    market = Market(
        requests=[Request(f"t{i}", value=10.0) for i in range(6)],
        nodes=[Node("n0"), Node("n1"), Node("n2")],
        exclusive_nodes=(("n0", "n1"),),
    )
    seen = set()
    for seed in range(20):
        clearing = CollectiveSelection().clear(market, seed=seed)
        used = clearing.allocation.used_nodes
        assert clearing.allocation.served_requests == {f"t{i}" for i in range(6)}
        assert not {"n0", "n1"} <= used
        seen |= used & {"n0", "n1"}
    assert seen == {"n0", "n1"}  # each twin is drawn in some round
