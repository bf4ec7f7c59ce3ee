"""Sub-markets within one round: a second clearing sees only the capacity the first left."""

from __future__ import annotations

import numpy as np
import pytest

from mercat.clearing import registry
from mercat.errors import TermsViolationError
from mercat.runtime.execute import SampledExecution
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.snapshot import BookState
from mercat.runtime.terms import PPB, Offer, RequestTerms
from mercat.runtime.views import capacity_left
from tests.runtime.book_fixtures import UNIT, funded_book


def _book():
    """Three servers; premium requests that fill the cheapest one, open requests after."""
    book = funded_book()
    for name, owner, gpu, cost in (("big", "alice", 10, 100), ("mid", "bob", 6, 150),
                                   ("small", "bob", 4, 200)):  # fmt: skip
        book.add_asset(
            owner, name, 5 * UNIT, Offer(name, capacity={"gpu": gpu}, unit_costs={"gpu": cost})
        )
    for request, demand, bid in (("p1", 6, 3), ("p2", 6, 2.5), ("p3", 2, 2),
                                 ("o1", 5, 3), ("o2", 4, 2.8), ("o3", 3, 2.6)):  # fmt: skip
        terms = RequestTerms(request, max_price=round(bid * demand * UNIT), demand={"gpu": demand})
        book.post_request("carol", terms)
    return book


def _only(prefix: str, servers: tuple[str, ...] | None = None):
    def view(state: BookState) -> BookState:
        assets = tuple(a for a in state.assets if servers is None or a.asset in servers)
        requests = tuple(r for r in state.requests if r.request.startswith(prefix))
        return BookState(state.round, state.unit, assets, requests)

    return view


def test_a_second_clearing_sees_what_the_first_left_and_the_book_accepts_its_tasks():
    book = _book()
    auction = registry.create("double-auction")
    first = run_round(
        book, 1, RoundPlan(auction, SampledExecution(), view=_only("p")), np.random.default_rng(0)
    )
    assert first.tasks
    used = book.usage_in(1)
    assert -(-used["big"].units["gpu"] // PPB) == 10  # the premium market took it all
    left = {}
    for asset, offered in (("big", 10), ("mid", 6), ("small", 4)):
        taken = -(-used[asset].units.get("gpu", 0) // PPB) if asset in used else 0
        left[asset] = offered - taken

    def leftover(state: BookState) -> BookState:
        return capacity_left(_only("o")(state), book.usage_in(state.round))

    seen = leftover(book.state(1))
    assert {a.asset: a.offer.capacity_of("gpu") for a in seen.assets} == {
        a: n for a, n in left.items() if n > 0
    }
    second = run_round(
        book,
        1,
        RoundPlan(auction, SampledExecution(), view=leftover, task_prefix="open"),
        np.random.default_rng(1),
    )
    assert second.tasks  # opened in the same round, within what the owners offered
    book.verify()


def test_without_the_narrowed_view_the_book_refuses_the_second_clearing():
    book = _book()
    auction = registry.create("double-auction")
    run_round(
        book, 1, RoundPlan(auction, SampledExecution(), view=_only("p")), np.random.default_rng(0)
    )
    before = book.books()
    with pytest.raises(TermsViolationError, match="capacity"):
        run_round(
            book,
            1,
            RoundPlan(auction, SampledExecution(), view=_only("o"), task_prefix="open"),
            np.random.default_rng(1),
        )
    assert book.books() == before  # refused as a whole


def test_unused_servers_keep_their_view_and_exhausted_ones_leave():
    book = _book()
    state = book.state(1)
    assert capacity_left(state, {}) is state
    big = next(a for a in state.assets if a.asset == "big")
    from mercat.runtime.records import Usage

    narrowed = capacity_left(state, {"big": Usage({"gpu": 10 * PPB}, True)})
    assert [a.asset for a in narrowed.assets] == ["mid", "small"]
    partly = capacity_left(state, {"big": Usage({"gpu": 3 * PPB + 1}, True)})
    view = next(a for a in partly.assets if a.asset == "big")
    assert view.offer.capacity_of("gpu") == 6  # 3 units and a part: 4 whole units taken
    assert view.offer.unit_costs == big.offer.unit_costs
    assert view.offer == Offer("big", capacity={"gpu": 6}, unit_costs={"gpu": 100})
    assert hash(view.offer) == hash(Offer("big", capacity={"gpu": 6}, unit_costs={"gpu": 100}))
    assert next(a for a in partly.assets if a.asset == "mid") is next(
        a for a in state.assets if a.asset == "mid"
    )
