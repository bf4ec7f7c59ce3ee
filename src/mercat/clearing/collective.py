"""Seed 000's selection as a clearing mechanism: requests are served by nodes drawn at random,
with probability proportional to their weight (the round pipeline sets a node's weight to its
asset's stake), and pay what those nodes ask.

Seed 000 ("Collective Incentives") has no prices: each task binds |A_t| assets drawn from
the market, uniformly under Free and Coll-Stake, in proportion to stake under Coll-Rep and
Coll-SR. As a mechanism over mercat's markets:

1. Requests are taken in market order (the order they were posted, in the pipeline). A
   request is served by `replicas` distinct nodes drawn from those that can serve it next
   to what is already allocated this round: capabilities, remaining capacity, node- and
   market-scope conflicts, exclusive groups (the allocation is always in V).
2. A draw is the seed's rejection sampling: pick an eligible node uniformly, accept it with
   probability weight / (largest eligible weight), redraw repeats. Every accepted pick is
   an exact weight-proportional draw among the eligible nodes that are not yet chosen, as
   the authors' `random.choices(weights=stakes)` with repeats redrawn. `weighted=False`
   accepts every pick (uniform selection). Nodes of weight 0 are never drawn under
   `weighted`. In a market without conflicts or exclusive groups the eligible nodes of
   each kind of request (its demand and capabilities) are listed once per round and kept
   up to date as capacity is used, so a round costs O(nodes) per kind of request, not per
   request.
3. Prices are the asks (pay-as-ask, zero margin): node n receives φ(n) = cost_n(α) (its
   fixed cost if used plus its unit costs on its load); request t pays its unit costs on
   each of its nodes plus an equal share of each node's fixed cost among the requests the
   node serves. A request whose value does not cover its drawn nodes' full asks (fixed
   costs unshared) is not served this round, so every request's utility is >= 0.

Not welfare-maximising and not truthful: this is the seed's selection rule, kept so that
seed 000's experiments run through the same pipeline as the priced mechanisms.
"""

from __future__ import annotations

from typing import ClassVar

from mercat.clearing.base import Mechanism, Property, Seed, as_generator
from mercat.errors import InvalidMarketError
from mercat.market.model import (
    FEASIBILITY_TOL,
    Allocation,
    Clearing,
    Market,
    Node,
    Request,
    capacity_limit,
)


class CollectiveSelection(Mechanism):
    """Seed 000's stake-weighted (or uniform) random selection, priced at the nodes' asks."""

    name: ClassVar[str] = "collective"
    summary: ClassVar[str] = (
        "Seed 000's selection: nodes drawn in proportion to their weight (stake), pay-as-ask."
    )
    properties: ClassVar[frozenset[Property]] = frozenset(
        {Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED, Property.ZERO_MARGIN}
    )

    def __init__(self, weighted: bool = True) -> None:
        if not isinstance(weighted, bool):
            raise InvalidMarketError(f"weighted must be true or false, got {weighted!r}")
        self.weighted = weighted

    def check_market(self, market: Market) -> None:
        if market.divisible:
            raise InvalidMarketError(
                "collective selection binds whole requests to nodes; the market is divisible"
            )

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        rng = as_generator(seed)
        state = _RoundState(market)
        chosen_by_request: dict[str, tuple[str, ...]] = {}
        for request in market.requests:
            pool, bound = state.eligible(request, self.weighted)
            picks = _draw(rng, pool, bound, request.replicas, self.weighted)
            if picks is None:
                continue
            full_ask = sum(_ask(node, request) + node.cost for node in picks)
            if full_ask > request.value * (1 + FEASIBILITY_TOL):
                continue  # the drawn nodes ask more than the request is worth
            state.serve(request, picks)
            chosen_by_request[request.id] = tuple(n.id for n in picks)
        allocation = Allocation.from_nodes(chosen_by_request)
        payments, rewards = _pay_as_ask(market, chosen_by_request)
        return Clearing(
            mechanism=self.name,
            allocation=allocation,
            payments=payments,
            rewards=rewards,
            diagnostics={"weighted": self.weighted, "served": len(chosen_by_request)},
        )


def _ask(node: Node, request: Request) -> float:
    """The node's unit costs on one whole replica of the request."""
    return sum(c * d for c, d in zip(node.unit_costs, request.demand, strict=True))


def _draw(rng, pool: list[Node], bound: float, count: int, weighted: bool):  # type: ignore[no-untyped-def]
    """`count` distinct nodes of `pool` by the seed's rejection sampling (module docstring;
    `bound` is at least every weight in the pool), or None if the pool is too small."""
    if len(pool) < count:
        return None
    picked: list[int] = []
    while len(picked) < count:
        index = int(rng.integers(len(pool)))
        if index in picked:
            continue
        if weighted and not rng.random() * bound < pool[index].weight:
            continue
        picked.append(index)
    return [pool[i] for i in picked]


def _pay_as_ask(
    market: Market, chosen: dict[str, tuple[str, ...]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Zero-margin prices: nodes get their cost, requests pay it (fixed costs shared)."""
    sharing: dict[str, int] = {}
    for nodes in chosen.values():
        for node_id in nodes:
            sharing[node_id] = sharing.get(node_id, 0) + 1
    payments: dict[str, float] = {}
    rewards: dict[str, float] = {}
    for request_id, nodes in chosen.items():
        request = market.request(request_id)
        price = 0.0
        for node_id in nodes:
            node = market.node(node_id)
            share = _ask(node, request) + node.cost / sharing[node_id]
            price += share
            rewards[node_id] = rewards.get(node_id, 0.0) + share
        payments[request_id] = price
    return payments, rewards


class _RoundState:
    """What the round has allocated so far: remaining capacity, node occupants, used groups."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.load: dict[str, list[float]] = {}  # filled as nodes are first used
        self._idle = (0.0,) * len(market.resources)  # the load of a node not used yet
        self.on_node: dict[str, set[str]] = {}
        self.served: set[str] = set()
        self.node_conflicts: dict[str, set[str]] = {}
        self.market_conflicts: dict[str, set[str]] = {}
        for c in market.conflicts:
            table = self.node_conflicts if c.scope == "node" else self.market_conflicts
            table.setdefault(c.first, set()).add(c.second)
            table.setdefault(c.second, set()).add(c.first)
        self.group_of: dict[str, int] = {}
        for g, group in enumerate(market.exclusive_nodes):
            for node_id in group:
                self.group_of[node_id] = g
        self.group_user: dict[int, str] = {}
        self.simple = not (market.conflicts or market.exclusive_nodes)
        self.pools: dict[tuple, _Pool] = {}  # type: ignore[type-arg]

    def eligible(self, request: Request, weighted: bool) -> tuple[list[Node], float]:
        """The nodes that can serve `request` next to what is allocated (without weight 0
        under `weighted`), and a bound on their weights."""
        if self.market_conflicts.get(request.id, set()) & self.served:
            return [], 0.0
        if not self.simple:
            pool = [n for n in self.market.nodes if self.fits(n, request)]
            if weighted:
                pool = [n for n in pool if n.weight > 0]
            return pool, max((n.weight for n in pool), default=0.0)
        key = (request.demand, request.capabilities, weighted)
        cached = self.pools.get(key)
        if cached is None:
            pool = [n for n in self.market.nodes if self.fits(n, request)]
            if weighted:
                pool = [n for n in pool if n.weight > 0]
            cached = self.pools[key] = _Pool(pool, request)
        return cached.nodes, cached.bound

    def fits(self, node: Node, request: Request) -> bool:
        if not request.capabilities <= node.capabilities:
            return False
        # The capacity rule of every mechanism, on the node's whole load (a slack taken on
        # what remains would be granted again at every request).
        load = self.load.get(node.id)
        if load is None:
            load = self._idle
        for used, need, cap in zip(load, request.demand, node.capacity, strict=True):
            if used + need > capacity_limit(cap):
                return False
        if self.simple:
            return True
        if self.node_conflicts.get(request.id, set()) & self.on_node.get(node.id, set()):
            return False
        group = self.group_of.get(node.id)
        return group is None or self.group_user.get(group, node.id) == node.id

    def serve(self, request: Request, nodes: list[Node]) -> None:
        self.served.add(request.id)
        for node in nodes:
            load = self.load.setdefault(node.id, [0.0] * len(self.market.resources))
            for r, need in enumerate(request.demand):
                load[r] += need
            self.on_node.setdefault(node.id, set()).add(request.id)
            group = self.group_of.get(node.id)
            if group is not None:
                self.group_user[group] = node.id
        for pool in self.pools.values():  # a node that no longer fits leaves the lists
            for node in nodes:
                if not self.fits(node, pool.request):
                    pool.discard(node)


class _Pool:
    """The eligible nodes of one kind of request, with swap-remove by position."""

    def __init__(self, nodes: list[Node], request: Request) -> None:
        self.nodes = nodes
        self.request = request
        self.position = {n.id: i for i, n in enumerate(nodes)}
        self.bound = max((n.weight for n in nodes), default=0.0)  # stays a valid bound

    def discard(self, node: Node) -> None:
        i = self.position.pop(node.id, None)
        if i is None:
            return
        last = self.nodes.pop()
        if last.id != node.id:
            self.nodes[i] = last
            self.position[last.id] = i
