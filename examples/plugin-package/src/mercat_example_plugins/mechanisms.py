"""A clearing mechanism as a plug-in: greedy allocation, pay-as-bid."""

from __future__ import annotations

from typing import ClassVar

from mercat.clearing.base import Mechanism, Property, Seed
from mercat.errors import InvalidMarketError
from mercat.market.constraints import can_serve, is_valid
from mercat.market.economics import node_cost, welfare
from mercat.market.model import Allocation, Clearing, Market


class GreedyPayAsBid(Mechanism):
    """Requests in order of value, each on the cheapest nodes that keep the allocation valid
    and raise welfare; every served request pays its value, every used node receives its
    cost. Individually rational (utilities are zero) and budget balanced (the margin is the
    welfare, which each step raises), neither optimal nor truthful."""

    name: ClassVar[str] = "greedy-pay-as-bid"
    summary: ClassVar[str] = "greedy by value, cheapest valid nodes, pay-as-bid"
    properties: ClassVar[frozenset[Property]] = frozenset(
        {Property.INDIVIDUALLY_RATIONAL, Property.BUDGET_BALANCED}
    )

    def check_market(self, market: Market) -> None:
        if market.divisible:
            raise InvalidMarketError("greedy-pay-as-bid clears indivisible markets only")

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        self.check_market(market)
        chosen: dict[str, tuple[str, ...]] = {}
        current = 0.0
        for request in sorted(market.requests, key=lambda t: (-t.value, t.id)):
            fits = [n for n in market.nodes if can_serve(n, request)]
            trial = Allocation.from_nodes(chosen)

            def extra(node, trial=trial, request=request):  # type: ignore[no-untyped-def]
                with_it = Allocation.from_nodes({**chosen, request.id: (node.id,)})
                return node_cost(market, with_it, node.id) - node_cost(market, trial, node.id)

            fits.sort(key=lambda n: (extra(n), n.id))
            nodes = tuple(n.id for n in fits[: request.replicas])
            if len(nodes) < request.replicas:
                continue
            candidate = Allocation.from_nodes({**chosen, request.id: nodes})
            if not is_valid(market, candidate):
                continue
            gained = welfare(market, candidate)
            if gained > current:
                chosen[request.id] = nodes
                current = gained
        allocation = Allocation.from_nodes(chosen)
        payments = {t: market.request(t).value for t in chosen}
        rewards = {n: node_cost(market, allocation, n) for n in allocation.used_nodes}
        return Clearing(self.name, allocation, payments, rewards)
