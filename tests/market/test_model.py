"""The market model: construction-time validation and allocation normal form."""

import math

import pytest

from mercat.errors import InvalidMarketError
from mercat.market.generators import running_example
from mercat.market.model import Allocation, Clearing, Conflict, Market, Node, Request


def market(**overrides):
    base = dict(
        requests=(Request("t1", 2.0, (1.0,)), Request("t2", 1.0, (0.5,))),
        nodes=(Node("n1", cost=0.5, unit_costs=(0.1,), capacity=(2.0,)),),
        conflicts=(),
        resources=("cpu",),
    )
    base.update(overrides)
    return Market(**base)


def test_a_valid_market_keeps_its_parts_as_tuples():
    m = Market(
        requests=[Request("t1", 2.0, (1.0,))],
        nodes=[Node("n1", capacity=(math.inf,), unit_costs=(0.0,))],
        resources=["cpu"],
    )
    assert isinstance(m.requests, tuple) and isinstance(m.resources, tuple)
    assert m.request("t1").value == 2.0 and m.node("n1").capacity == (math.inf,)
    with pytest.raises(InvalidMarketError, match="unknown request 'zz'"):
        m.request("zz")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nodes": (Node("t1", capacity=(1.0,), unit_costs=(0.0,)),)}, "duplicate id 't1'"),
        (
            {"requests": (Request("t1", 1.0, (1.0,)), Request("t1", 2.0, (1.0,)))},
            "duplicate id 't1'",
        ),
        ({"nodes": (Node("n1", capacity=(-1.0,), unit_costs=(0.0,)),)}, r"capacity.*>= 0"),
        ({"nodes": (Node("n1", cost=-0.5, capacity=(1.0,), unit_costs=(0.0,)),)}, "cost"),
        ({"requests": (Request("t1", -2.0, (1.0,)),)}, "value of request 't1'"),
        ({"requests": (Request("t1", 2.0, (1.0, 2.0)),)}, "has 2 entries but the market has 1"),
        ({"requests": (Request("t1", float("nan"), (1.0,)),)}, "finite"),
        ({"requests": (Request("t1", 1e308, (1.0,)),)}, r"at most 1e\+15 in magnitude"),
        ({"nodes": (Node("n1", cost=2e15, capacity=(1.0,), unit_costs=(0.0,)),)}, "1e\\+15"),
        ({"requests": (Request("t1", "2", (1.0,)),)}, "must be a number"),
        ({"requests": (Request("t1", True, (1.0,)),)}, "must be a number"),
        ({"requests": (Request("", 1.0, (1.0,)),)}, "non-empty string"),
        ({"requests": (Request("t1", 1.0, (1.0,), replicas=0),)}, "replicas"),
        ({"conflicts": (Conflict("t1", "t9"),)}, "unknown request 't9'"),
        ({"conflicts": (Conflict("t1", "n1"),)}, r"unknown request 'n1' \(it is a node\)"),
        ({"conflicts": (Conflict("t1", "t1"),)}, "cannot conflict with itself"),
        ({"conflicts": (Conflict("t1", "t2", "global"),)}, "scope"),
        (
            {"conflicts": (Conflict("t1", "t2"), Conflict("t2", "t1"))},
            "duplicate conflict",
        ),
        ({"resources": ("cpu", "cpu")}, "duplicate resource"),
        ({"exclusive_nodes": (("n1",),)}, "at least 2 node ids"),
        ({"exclusive_nodes": (("n1", "n1"),)}, "repeats a node"),
        ({"exclusive_nodes": (("n1", "t1"),)}, r"unknown node 't1' \(it is a request\)"),
        ({"exclusive_nodes": "n1"}, "exclusive_nodes must be"),
        ({"divisible": 1}, "divisible"),
        ({"requests": (Request("t1", 1.0, (1.0,), capabilities="gpu"),)}, "frozenset"),
    ],
)
def test_invalid_markets_are_rejected_with_a_specific_message(overrides, message):
    with pytest.raises(InvalidMarketError, match=message):
        market(**overrides)


def test_divisible_markets_allow_one_replica_only():
    with pytest.raises(InvalidMarketError, match="allows 1 replica only"):
        market(requests=(Request("t1", 1.0, (1.0,), replicas=2),), divisible=True)


def test_lists_and_sets_are_accepted_for_vectors_and_capabilities():
    t = Request("t1", 1.0, [1.0], capabilities={"gpu"})
    n = Node("n1", unit_costs=[0.0], capacity=[2.0], capabilities=["gpu"])
    assert t.demand == (1.0,) and t.capabilities == frozenset({"gpu"})
    assert n.capacity == (2.0,) and n.capabilities == frozenset({"gpu"})


def test_bidding_request_has_per_unit_bid_and_quantity():
    t = Request.bidding("u1", 0.75, 0.5)
    assert t.value == 0.375 and t.demand == (0.5,)
    assert t.unit_bid == 0.75 and t.quantity == 0.5
    assert Request("t", 6.0).quantity == 1.0 and Request("t", 6.0).unit_bid == 6.0


def test_allocation_normal_form():
    a = Allocation((("t2", "n1", 1.0), ("t1", "n2", 0.0), ("t1", "n1", 0.5)))
    b = Allocation.from_shares({"t1": {"n1": 0.5}, "t2": {"n1": 1.0}})
    assert a == b and hash(a) == hash(b)
    assert a.shares == (("t1", "n1", 0.5), ("t2", "n1", 1.0))
    assert a.served_requests == {"t1", "t2"} and a.used_nodes == {"n1"}
    assert a.nodes_of("t1") == {"n1"} and a.requests_on("n1") == {"t1", "t2"}
    assert a.share("t1", "n1") == 0.5 and a.share("t1", "n2") == 0.0
    assert a.as_dict() == {"t1": {"n1": 0.5}, "t2": {"n1": 1.0}}
    assert Allocation.from_nodes({"t1": ["n1", "n2"]}).nodes_of("t1") == {"n1", "n2"}
    assert Allocation.empty().served_requests == frozenset()


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ((("t1", "n1", 1.0), ("t1", "n1", 1.0)), "twice"),
        ((("t1", "n1", -0.5),), "negative"),
        ((("t1", "n1", float("inf")),), "finite"),
    ],
)
def test_bad_allocations_are_rejected(shares, message):
    with pytest.raises(InvalidMarketError, match=message):
        Allocation(shares)


def test_without_requests_drops_their_conflicts():
    m = running_example()
    smaller = m.without_requests(["t2"])
    assert [t.id for t in smaller.requests] == ["t1"] and smaller.conflicts == ()
    assert smaller.nodes == m.nodes


def test_clearing_equality_ignores_diagnostics():
    a = Clearing("x", Allocation.empty(), diagnostics={"seconds": 1.0})
    b = Clearing("x", Allocation.empty(), diagnostics={"seconds": 2.0})
    assert a == b and a.payment("t1") == 0.0 and a.reward("n1") == 0.0
