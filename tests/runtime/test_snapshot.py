"""Stage 1 of a round: the fast snapshot, which reuses the nodes and requests it built in
earlier rounds, equals its readable twin (`snapshot_reference`) round after round: as stakes,
offers, resources, units and requests change, and through a market run of seed 002."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mercat.runtime import round as round_module
from mercat.runtime.records import RequestRecord
from mercat.runtime.snapshot import AssetView, BookState, snapshot, snapshot_reference
from mercat.runtime.terms import Offer, RequestTerms

UNIT = 1000


def _server(name: str, stake: int = 5 * UNIT, **offer) -> AssetView:
    return AssetView(name, "alice", stake, Offer(name, **offer))


def _request(name: str, price: int = 9 * UNIT, **terms) -> RequestRecord:
    terms.setdefault("demand", {"gpu": 2})
    return RequestRecord(name, "carol", RequestTerms(name, max_price=price, **terms), "open")


SERVERS = (
    _server("n1", capacity={"gpu": 4}, unit_costs={"gpu": 100}, capabilities=["cuda"]),
    _server("n2", capacity={"gpu": 8, "cpu": 16}, cost=UNIT, unit_costs={"cpu": 5}),
    _server("n3", capacity={"gpu": 2}),
)
MODEL = AssetView("m1", "bob", UNIT, Offer("m1", kind="model", cost=2 * UNIT, cid="Qmodel1"))
REQUESTS = (
    _request("t1"),
    _request("t2", demand={"gpu": 1, "cpu": 3}, replicas=2, capabilities=["cuda"]),
    _request("t3", assets=["m1"]),  # binds the model by id: 7 tokens left for servers
    _request("t4", assets=["Qmodel1"]),  # by its CID
    _request("t5", assets=["n1"]),  # names a server: waits
    _request("t6", assets=["gone"]),  # names an asset that is not offered: waits
    _request("t7", price=2 * UNIT, assets=["m1"]),  # cannot pay the model: waits
)


def _rounds() -> list[BookState]:
    """Six rounds of one book: views and terms kept where nothing changed, as a book does."""
    n1, n2, n3 = SERVERS
    first = BookState(1, UNIT, (*SERVERS, MODEL), REQUESTS)
    restaked = replace(n2, stake=3 * UNIT)  # a new view: the collective rule moved its stake
    narrowed = AssetView("n1", "alice", n1.stake, Offer("n1", capacity={"gpu": 1},
                         unit_costs={"gpu": 100}, capabilities=["cuda"]))  # fmt: skip
    ram = _request("t8", demand={"ram": 4})  # a resource no server offers
    repriced = AssetView("m1", "bob", UNIT, Offer("m1", kind="model", cost=3 * UNIT, cid="Qmodel1"))
    return [
        first,
        BookState(2, UNIT, (n1, restaked, n3, repriced), REQUESTS[1:]),
        BookState(3, UNIT, (narrowed, restaked, MODEL), (*REQUESTS[1:], ram)),
        BookState(4, UNIT, (n1, restaked, n3, MODEL), REQUESTS[1:]),  # "ram" gone again
        BookState(5, 10 * UNIT, (n1, restaked, n3, MODEL), REQUESTS[1:]),  # another unit
        BookState(6, UNIT, (), REQUESTS),  # no servers
        BookState(7, UNIT, (n1, n3), ()),  # no requests
    ]


@pytest.mark.parametrize("divisible", [False, True])
def test_the_fast_snapshot_equals_the_reference_round_after_round(divisible):
    for state in _rounds():
        fast = snapshot(state, divisible=divisible)
        assert fast == snapshot_reference(state, divisible=divisible), state.round
        assert fast.market.resources == snapshot_reference(state).market.resources


def test_what_waits_and_what_a_request_pays_for_servers():
    fast = snapshot(_rounds()[0])
    assert [t.id for t in fast.market.requests] == ["t1", "t2", "t3", "t4"]
    assert fast.bound["t3"] == fast.bound["t4"] == (("m1", 2 * UNIT),)
    assert fast.market.request("t3").value == 7.0  # 9 tokens, 2 of them for the model
    assert fast.market.resources == ("cpu", "gpu")
    assert fast.market.node("n2").weight == 5.0 and fast.market.node("n2").cost == 1.0


def test_parts_are_reused_only_while_their_view_terms_and_resources_stay():
    states = _rounds()
    first, second, third, fourth = (snapshot(s) for s in states[:4])
    # n1's view and t2's terms are unchanged from round 1 to 2: the same objects.
    assert second.market.node("n1") is first.market.node("n1")
    assert second.market.request("t2") is first.market.request("t2")
    # The model costs 3 tokens now: t3 has 6 left for servers, not 7.
    assert second.market.request("t3").value == 6.0 and first.market.request("t3").value == 7.0
    # n2 was re-staked: a new node with the new weight.
    assert second.market.node("n2").weight == 3.0 and first.market.node("n2").weight == 5.0
    # Round 3 adds a resource: every vector grows, nothing built for two resources is reused.
    assert third.market.resources == ("cpu", "gpu", "ram")
    assert len(third.market.request("t2").demand) == 3
    assert fourth.market.resources == ("cpu", "gpu")
    assert len(fourth.market.node("n3").capacity) == 2


def test_the_snapshot_of_every_round_of_a_market_run_equals_the_reference(monkeypatch):
    # Seed 002's market for a day: capacity-left views, stakes moved by the collective rule,
    # removed servers, requests that wait and expire, two sub-markets a round.
    from mercat.scenarios.cloudchain import simulate
    from mercat.scenarios.cloudchain_config import CloudChainConfig

    checked = []

    def checked_snapshot(state: BookState, *, divisible: bool = False):
        fast = snapshot(state, divisible=divisible)
        assert fast == snapshot_reference(state, divisible=divisible), state.round
        checked.append(len(fast.market.requests))
        return fast

    monkeypatch.setattr(round_module, "snapshot", checked_snapshot)
    config = CloudChainConfig(requesters=20, days=1, mechanism="coll-sr", stake=6.0)
    result = simulate(config, seed=4)
    assert len(checked) == 2 * 24 and sum(checked) > 100
    assert result.removed  # stakes fell to the removal level within the day


def test_requests_are_kept_for_two_rounds_not_for_the_life_of_the_book():
    # A month posts some 60,000 requests; a cache of all of them is a heap that every full
    # garbage collection walks. Only what was in the last two rounds' markets is kept.
    from mercat.runtime import snapshot as snapshot_module

    recent = snapshot_module._REQUESTS
    for round_ in range(100, 110):
        fresh = tuple(_request(f"r{round_}.{i}") for i in range(5))
        snapshot(BookState(round_, UNIT, SERVERS, fresh))
        snapshot(BookState(round_, UNIT, SERVERS, fresh[:2]))  # a second sub-market
        if round_ > 100:  # what earlier tests left is gone by now
            assert len(recent.now) + len(recent.before) <= 10
    waiting = fresh[0]
    kept = snapshot(BookState(110, UNIT, SERVERS, (waiting,))).market.request(waiting.request)
    assert (
        snapshot(BookState(111, UNIT, SERVERS, (waiting,))).market.request(waiting.request) is kept
    )
