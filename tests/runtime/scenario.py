"""One small market, built the same way on any book: owners with offered servers and a named
model, requesters with requests over several rounds. Used by the parity tests."""

from __future__ import annotations

import numpy as np

from mercat.runtime.terms import Offer, RequestTerms

UNIT = 1000


def populate(book, rng: np.random.Generator, *, servers: int = 4, requests: int = 12) -> dict:  # type: ignore[no-untyped-def]
    """Accounts, assets and requests on `book`; returns the assets' failure and lateness."""
    for name in ("alice", "bob", "carol", "dave"):
        book.open_account(name)
        book.deposit(name, 1_000 * UNIT)
    book.deposit("operator", 500 * UNIT)
    book.fund_pool("operator", 200 * UNIT)
    failure, late = {}, {}
    for j in range(servers):
        name = f"s{j}"
        offer = Offer(
            name,
            capacity={"gpu": int(rng.integers(2, 6))},
            cost=int(rng.integers(0, UNIT)),
            unit_costs={"gpu": int(rng.integers(0, 300))},
        )
        book.add_asset(("alice", "bob")[j % 2], name, 3 * UNIT, offer)
        failure[name] = float(rng.choice([0.0, 0.1, 0.6]))
        late[name] = float(rng.choice([0.0, 0.2]))
    book.add_asset("bob", "model", 3 * UNIT, Offer("model", kind="model", cost=100, cid="bafkmdl"))
    failure["model"] = 0.05
    for i in range(requests):
        book.post_request(
            ("carol", "dave")[i % 2],
            RequestTerms(
                f"q{i}",
                max_price=int(rng.integers(UNIT, 8 * UNIT)),
                demand={"gpu": int(rng.integers(1, 3))},
                replicas=int(rng.integers(1, 3)),
                assets=["bafkmdl"] if i % 3 == 0 else [],
                deadline_ms=100,
                expires=int(rng.integers(1, 5)),
            ),
        )
    return {"failure": failure, "late": late}
