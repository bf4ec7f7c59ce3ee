"""Stage 1 of a round: the book's open requests and eligible assets, as a `Market`.

A book shows a round its state (`BookState`): the active assets with their owners, stakes and
offers, and the requests that are open and not expired, in the order they were posted.
`snapshot` turns it into the market a mechanism clears, and keeps what the money rule needs
to turn the clearing back into integer tasks (`RoundMarket`):

- every active *server* with an offer is a node: cost and unit costs in tokens
  (base units / `unit`), capacity in resource units, its capabilities, and its stake in
  tokens as its selection `weight` (seed 000's stake-weighted selection reads it);
- every open request whose named assets (app, dataset, model; by id or CID) are active and
  offered is a request: its value is what it will pay for servers, `max_price` minus the
  named assets' costs, in tokens; requests that cannot pay their named assets, or name one
  that is gone, wait (they are not in the market this round);
- resources are the names any server or request uses, sorted;
- `divisible=True` (the double auction) lets a request be split across servers.

Assets at the removal level are not active (the collective rule removed them), so they are
never in a market again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from mercat.market.model import Market, Node, Request
from mercat.runtime.records import RequestRecord
from mercat.runtime.terms import Offer, RequestTerms


@dataclass(frozen=True, slots=True, eq=False)
class AssetView:
    """An active offered asset as a round sees it. Compared and hashed by identity: a book
    keeps one view per asset until its stake or offer changes, so a snapshot can reuse what
    it built from the same view last round."""

    asset: str
    owner: str
    stake: int
    offer: Offer


@dataclass(frozen=True)
class BookState:
    """What a book shows a round: active offered assets and open requests (posting order)."""

    round: int
    unit: int
    assets: tuple[AssetView, ...]
    requests: tuple[RequestRecord, ...]

    def cid_index(self) -> dict[str, str]:
        return {a.offer.cid: a.asset for a in self.assets if a.offer.cid is not None}


@dataclass(frozen=True)
class RoundMarket:
    """A round's market and what the money rule needs beside it."""

    round: int
    unit: int
    market: Market
    requests: Mapping[str, RequestRecord]
    bound: Mapping[str, tuple[tuple[str, int], ...]]  # request -> ((named asset, cost), ...)
    views: Mapping[str, AssetView]  # every eligible asset (servers and named ones)

    def offer(self, asset: str) -> Offer:
        return self.views[asset].offer

    def stake(self, asset: str) -> int:
        return self.views[asset].stake


def snapshot(state: BookState, *, divisible: bool = False) -> RoundMarket:
    """The round's market (module docstring)."""
    unit = state.unit
    by_id = {a.asset: a for a in state.assets}
    servers = [a for a in state.assets if a.offer.is_server]
    names: set[str] = set()
    for a in servers:
        names |= _resources_of(a.offer)
    for rec in state.requests:
        names.update(r for r, _ in rec.terms.demand)
    resources = tuple(sorted(names))
    by_cid = state.cid_index() if any(r.terms.assets for r in state.requests) else {}

    requests: list[Request] = []
    records: dict[str, RequestRecord] = {}
    bound: dict[str, tuple[tuple[str, int], ...]] = {}
    for record in state.requests:
        terms = record.terms
        named = []
        for reference in terms.assets:
            asset = by_id.get(reference) or by_id.get(by_cid.get(reference, ""))
            if asset is None or asset.offer.is_server:
                break
            named.append((asset.asset, asset.offer.cost))
        else:
            budget = terms.max_price - sum(cost for _, cost in named)
            if budget <= 0:
                continue
            requests.append(_request(terms, budget, resources, unit))
            records[terms.request] = record
            bound[terms.request] = tuple(named)

    nodes = [_node(a, resources, unit) for a in servers]
    # Every part is valid by construction (integers the book checked when their owners
    # signed them; ids unique across assets and requests in every book), so the market is
    # built without validating it again (Market.of_valid_parts).
    market = Market.of_valid_parts(
        tuple(requests), tuple(nodes), resources, divisible=divisible, name=f"round {state.round}"
    )
    return RoundMarket(
        round=state.round,
        unit=unit,
        market=market,
        requests=records,
        bound=bound,
        views=by_id,
    )


# A round's market differs from the last one's in a few stakes and requests: the parts are
# cached by what they are built from, so most of a snapshot is dictionary look-ups.


@lru_cache(maxsize=1 << 12)
def _resources_of(offer: Offer) -> frozenset[str]:
    return frozenset(r for r, _ in offer.capacity) | frozenset(r for r, _ in offer.unit_costs)


@lru_cache(maxsize=1 << 16)
def _node(view: AssetView, resources: tuple[str, ...], unit: int) -> Node:
    offer, stake, asset = view.offer, view.stake, view.asset
    capacity = dict(offer.capacity)
    costs = dict(offer.unit_costs)
    return Node(
        id=asset,
        cost=offer.cost / unit,
        unit_costs=tuple(costs.get(r, 0) / unit for r in resources),
        capacity=tuple(float(capacity.get(r, 0)) for r in resources),
        capabilities=offer.capabilities,
        weight=stake / unit,
    )


@lru_cache(maxsize=1 << 16)
def _request(terms: RequestTerms, budget: int, resources: tuple[str, ...], unit: int) -> Request:
    demand = dict(terms.demand)
    return Request(
        id=terms.request,
        value=budget / unit,
        demand=tuple(float(demand.get(r, 0)) for r in resources),
        replicas=terms.replicas,
        capabilities=terms.capabilities,
    )
