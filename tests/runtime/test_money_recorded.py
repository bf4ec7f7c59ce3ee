"""The money rule's assign and open stages give, task for task and refusal for refusal, what
they gave before they were made faster: a digest of their results over seeded random rounds
(the tasks with their charges and payouts, the books after opening, and the messages of the
refusals of tampered tasks) recorded with the earlier, slower code.

A change to what the money rule decides (not only how fast) changes the digest: then the
new digest is recorded here with the reason, deliberately.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from mercat.clearing import registry
from mercat.errors import MercatError
from mercat.runtime.memory import MemoryBook
from mercat.runtime.money import assign
from mercat.runtime.snapshot import snapshot
from mercat.runtime.terms import Offer, RequestTerms
from tests.runtime.book_fixtures import UNIT, funded_book

# Recorded with the assign and open_tasks of commit 84eb1f8 (before their speed-up).
RECORDED = "b28aa44905ae87b4d9d9bbd5d3b5f18fa660d1ecb16565e613e76a3dae168095"


def _book(rng: np.random.Generator, auction: bool) -> MemoryBook:
    """A random book; for the double auction one resource, unit costs only, no
    capabilities (what it clears)."""
    book = funded_book()
    for j in range(int(rng.integers(1, 7))):
        capacity = {"gpu": int(rng.integers(1, 8)), "mem": int(rng.integers(1, 64))}
        unit_costs = {"gpu": int(rng.integers(0, 300)), "mem": int(rng.integers(0, 9))}
        book.add_asset(
            ("alice", "bob")[j % 2],
            f"s{j}",
            int(rng.integers(book.stake_bounds[0], 5 * UNIT)),
            Offer(
                f"s{j}",
                capacity={"gpu": capacity["gpu"]} if auction else capacity,
                cost=0 if auction else int(rng.integers(0, UNIT)),
                unit_costs={"gpu": unit_costs["gpu"]} if auction else unit_costs,
                capabilities=["cuda"] if rng.random() < 0.5 else [],
            ),
        )
    book.add_asset("bob", "app", 2 * UNIT, Offer("app", kind="app", cost=70, cid="bafkapp"))
    book.add_asset("alice", "data", 2 * UNIT, Offer("data", kind="dataset", cost=33))
    for i in range(int(rng.integers(1, 14))):
        named = [["app"], ["bafkapp", "data"], [], []][int(rng.integers(0, 4))]
        book.post_request(
            ("carol", "dave")[i % 2],
            RequestTerms(
                f"q{i}",
                max_price=int(rng.integers(1, 6 * UNIT)),
                demand={"gpu": int(rng.integers(1, 4))}
                if auction
                else {"gpu": int(rng.integers(0, 4)), "mem": int(rng.integers(0, 30))},
                replicas=1 if auction else int(rng.integers(1, 4)),
                capabilities=["cuda"] if rng.random() < 0.3 and not auction else [],
                assets=named,
            ),
        )
    return book


def _tampered(tasks, rng):  # type: ignore[no-untyped-def]
    """Task lists the book must refuse (or, by chance, accept): each a small change."""
    t = tasks[int(rng.integers(len(tasks)))]
    yield "cut a payout", [replace(t, payouts=(0, *t.payouts[1:])) if x is t else x for x in tasks]
    yield "twice", [*tasks, replace(t, task="again")]
    yield "charge above escrow", [replace(x, charge=x.charge + 10**9) for x in tasks]
    yield "drop a named asset", [replace(t, assets=t.assets[:1], payouts=t.payouts[:1])]
    yield "fraction", [replace(t, fraction=t.fraction // 2 or 1)]
    yield "a server too many", [replace(t, assets=(*t.assets, "s0"), payouts=(*t.payouts, 5))]


def _digest(seeds: range) -> str:
    h = hashlib.sha256()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        mechanism = ("optimal", "collective", "double-auction")[seed % 3]
        book = _book(rng, mechanism == "double-auction")
        context = snapshot(book.state(1), divisible=mechanism == "double-auction")
        clearing = registry.create(mechanism).clear(context.market, seed=seed)
        margin_to = "pool" if mechanism == "double-auction" else "operator"
        tasks = assign(context, clearing, subsidies=margin_to != "pool")
        h.update(repr(tasks).encode())
        if not tasks:
            continue
        for what, tampered in _tampered(tasks, rng):
            try:
                book.open_tasks(1, tampered, margin_to)
                outcome = "opened"
                book = _book(np.random.default_rng(seed), mechanism == "double-auction")
            except MercatError as e:
                outcome = f"{type(e).__name__}: {e}"
            h.update(f"{what} -> {outcome}".encode())
        book.open_tasks(1, tasks, margin_to)
        h.update(repr(sorted(book.books().items())).encode())
        h.update(repr(sorted(book.usage.items())).encode())
        h.update(repr(list(book.requests.values())).encode())
    return h.hexdigest()


def test_assign_and_open_decide_what_they_decided_before_the_speed_up():
    assert _digest(range(120)) == RECORDED
