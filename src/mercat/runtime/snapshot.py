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
from dataclasses import dataclass, field
from typing import TypeVar

from mercat.market.model import Market, Node, Request
from mercat.runtime.records import RequestRecord
from mercat.runtime.terms import Offer, RequestTerms

_Part = TypeVar("_Part", Node, Request)


@dataclass(frozen=True, slots=True, eq=False)
class AssetView:
    """An active offered asset as a round sees it. Compared and hashed by identity: a book
    keeps one view per asset until its stake or offer changes, so a snapshot can reuse what
    it built from the same view last round (kept on the view: `_names`, `_node`)."""

    asset: str
    owner: str
    stake: int
    offer: Offer
    _names: frozenset[str] | None = field(default=None, init=False, repr=False)
    _node: tuple[tuple[str, ...], int, Node] | None = field(default=None, init=False, repr=False)


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
    """The round's market (module docstring). A round's market differs from the last one's
    in a few stakes and requests, so its parts are reused from earlier rounds (see
    `_node_of`, `_request_of`); `snapshot_reference` builds every part anew, and a test
    holds the two equal."""
    unit = state.unit
    by_id = {a.asset: a for a in state.assets}
    servers = [a for a in state.assets if a.offer.kind == "server"]
    names: set[str] = set().union(*[_names_of(a) for a in servers])
    for record in state.requests:
        for resource, _ in record.terms.demand:
            names.add(resource)
    resources = tuple(sorted(names))
    # One tuple object per set of resources, so that a part built for it is recognised by
    # identity (`_node_of`, `_request_of`).
    if len(_RESOURCES) >= _RESOURCES_MAX:
        _RESOURCES.clear()  # names come from signed offers and terms: never hold them all
    resources = _RESOURCES.setdefault(resources, resources)
    by_cid: dict[str, str] | None = None
    _REQUESTS.start(state.round)

    requests: list[Request] = []
    records: dict[str, RequestRecord] = {}
    bound: dict[str, tuple[tuple[str, int], ...]] = {}
    for record in state.requests:
        terms = record.terms
        if not terms.assets:  # the common case: a request for servers alone
            requests.append(_request_of(terms, terms.max_price, resources, unit))
            records[terms.request] = record
            bound[terms.request] = ()
            continue
        if by_cid is None:
            by_cid = state.cid_index()
        named = _named_assets(terms, by_id, by_cid)
        if named is None:
            continue
        budget = terms.max_price - sum(cost for _, cost in named)
        if budget <= 0:
            continue
        requests.append(_request_of(terms, budget, resources, unit))
        records[terms.request] = record
        bound[terms.request] = named

    nodes = [_node_of(a, resources, unit) for a in servers]
    # Every part is valid by construction (integers the book checked when their owners
    # signed them; ids unique across assets and requests in every book), so the market is
    # built without validating it again (Market.of_valid_parts).
    market = Market.of_valid_parts(
        tuple(requests), tuple(nodes), resources, divisible=divisible, name=f"round {state.round}"
    )
    return RoundMarket(
        round=state.round, unit=unit, market=market, requests=records, bound=bound, views=by_id
    )


def snapshot_reference(state: BookState, *, divisible: bool = False) -> RoundMarket:
    """`snapshot` as the module docstring says it, every node and request built anew by its
    constructor: the readable twin of the fast path."""
    unit = state.unit
    by_id = {a.asset: a for a in state.assets}
    servers = [a for a in state.assets if a.offer.is_server]
    names: set[str] = set()
    for a in servers:
        names.update(r for r, _ in a.offer.capacity)
        names.update(r for r, _ in a.offer.unit_costs)
    for record in state.requests:
        names.update(r for r, _ in record.terms.demand)
    resources = tuple(sorted(names))
    by_cid = state.cid_index()

    requests: list[Request] = []
    records: dict[str, RequestRecord] = {}
    bound: dict[str, tuple[tuple[str, int], ...]] = {}
    for record in state.requests:
        terms = record.terms
        named = _named_assets(terms, by_id, by_cid)
        if named is None:
            continue
        budget = terms.max_price - sum(cost for _, cost in named)
        if budget <= 0:
            continue
        demand = dict(terms.demand)
        requests.append(
            Request(
                id=terms.request,
                value=budget / unit,
                demand=tuple(float(demand.get(r, 0)) for r in resources),
                replicas=terms.replicas,
                capabilities=terms.capabilities,
            )
        )
        records[terms.request] = record
        bound[terms.request] = named

    nodes = []
    for view in servers:
        capacity, costs = dict(view.offer.capacity), dict(view.offer.unit_costs)
        nodes.append(
            Node(
                id=view.asset,
                cost=view.offer.cost / unit,
                unit_costs=tuple(costs.get(r, 0) / unit for r in resources),
                capacity=tuple(float(capacity.get(r, 0)) for r in resources),
                capabilities=view.offer.capabilities,
                weight=view.stake / unit,
            )
        )
    market = Market.of_valid_parts(
        tuple(requests), tuple(nodes), resources, divisible=divisible, name=f"round {state.round}"
    )
    return RoundMarket(
        round=state.round, unit=unit, market=market, requests=records, bound=bound, views=by_id
    )


def _named_assets(
    terms: RequestTerms, by_id: Mapping[str, AssetView], by_cid: Mapping[str, str]
) -> tuple[tuple[str, int], ...] | None:
    """The assets a request names (by id or CID), each with its cost; None if one is gone,
    not offered, or a server (a request binds apps, datasets and models, not servers)."""
    named = []
    for reference in terms.assets:
        asset = by_id.get(reference) or by_id.get(by_cid.get(reference, ""))
        if asset is None or asset.offer.is_server:
            return None
        named.append((asset.asset, asset.offer.cost))
    return tuple(named)


# --- the fast path's reuse --------------------------------------------------------------
#
# The parts are looked up by identity, not by value: views and terms are immutable, a book
# keeps the same objects from round to round, and comparing equal-but-distinct frozen
# dataclasses field by field (what a cache keyed by value does on every hash match) cost
# more than building the part again.

_RESOURCES: dict[tuple[str, ...], tuple[str, ...]] = {}
"""Each set of resource names a snapshot has seen, as one tuple object (few: one per market)."""
_RESOURCES_MAX = 1 << 10


class _RecentRequests:
    """The requests built in this round and the round before, by id(terms) -> (terms, budget,
    resources, unit, Request). A request that waits is reused; one that traded, expired or
    was withdrawn drops out within two rounds. So the cache holds what is open, not every
    request a month posted: each full collection of Python's garbage collector walks every
    object alive, and a cache of all of them cost a month of seed 002 more than the
    requests it saved. An entry holds its terms, so their id is not reused while it is here."""

    MAX = 1 << 16  # entries a round may add (a book bounds its open requests far below)

    def __init__(self) -> None:
        self.round: int | None = None
        self.now: dict[int, tuple[RequestTerms, int, tuple[str, ...], int, Request]] = {}
        self.before: dict[int, tuple[RequestTerms, int, tuple[str, ...], int, Request]] = {}

    def start(self, round_: int) -> None:
        if round_ != self.round:
            self.round, self.before, self.now = round_, self.now, {}

    def get(
        self, terms: RequestTerms, budget: int, resources: tuple[str, ...], unit: int
    ) -> Request | None:
        key = id(terms)
        built = self.now.get(key)
        if built is None:
            built = self.before.pop(key, None)
            if built is None:
                return None
            self.now[key] = built
        if built[0] is terms and built[1] == budget and built[2] is resources and built[3] == unit:
            return built[4]
        return None

    def put(
        self,
        terms: RequestTerms,
        budget: int,
        resources: tuple[str, ...],
        unit: int,
        request: Request,
    ) -> None:
        if len(self.now) >= self.MAX:
            self.now.clear()  # one round posting more than a book holds: rebuild instead
        self.now[id(terms)] = (terms, budget, resources, unit, request)


_REQUESTS = _RecentRequests()


def _names_of(view: AssetView) -> frozenset[str]:
    """The resource names a server's offer uses, kept on its view."""
    names = view._names
    if names is None:
        offer = view.offer
        names = frozenset(r for r, _ in offer.capacity) | frozenset(r for r, _ in offer.unit_costs)
        object.__setattr__(view, "_names", names)
    return names


def _node_of(view: AssetView, resources: tuple[str, ...], unit: int) -> Node:
    """The node of a server's view in a market of `resources`, kept on the view (a book keeps
    a view until the asset's stake or offer changes)."""
    built = view._node
    if built is not None and built[0] is resources and built[1] == unit:
        return built[2]
    offer = view.offer
    capacity, costs = dict(offer.capacity), dict(offer.unit_costs)
    node = _valid(
        Node,
        id=view.asset,
        cost=offer.cost / unit,
        unit_costs=tuple(costs.get(r, 0) / unit for r in resources),
        capacity=tuple(float(capacity.get(r, 0)) for r in resources),
        capabilities=offer.capabilities,
        weight=view.stake / unit,
    )
    object.__setattr__(view, "_node", (resources, unit, node))
    return node


def _request_of(terms: RequestTerms, budget: int, resources: tuple[str, ...], unit: int) -> Request:
    """The market's request for `terms` with `budget` for servers, reused while the request
    waits from round to round (`_RecentRequests`)."""
    request = _REQUESTS.get(terms, budget, resources, unit)
    if request is None:
        demand = dict(terms.demand)
        request = _valid(
            Request,
            id=terms.request,
            value=budget / unit,
            demand=tuple(float(demand.get(r, 0)) for r in resources),
            replicas=terms.replicas,
            capabilities=terms.capabilities,
        )
        _REQUESTS.put(terms, budget, resources, unit, request)
    return request


def _valid(cls: type[_Part], **values: object) -> _Part:
    """A `Node` or `Request` from values already in the form its constructor would store
    (tuples of floats, frozensets): the constructor's coercion skipped. Their offers and
    terms were validated when signed; `snapshot_reference` builds them with the constructor
    and a test holds the two equal."""
    part = object.__new__(cls)
    part.__dict__.update(values)
    return part
