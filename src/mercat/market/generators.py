"""Markets to test and measure on: random markets of every constraint kind, the seed-003
auction set-ups, and the seed-001 running example.

Every generator takes a seed or a numpy Generator and is reproducible from it.

Seed-003 set-ups (§6.2, §6.3): user bids per unit U[0.75, 1.25], demands U(0, 1].
- double auction: provider unit costs U(0, 1]; each provider's capacity is its even share of
  the total demand, D/m, scaled by a random factor in [0.5, 1.5], so that providers sometimes
  lack capacity and sometimes have spare (the seed scales "the capacity of the providers"
  by that factor; the even share is our reading of "depending upon the overall bandwidth
  required").
- standard auction (VCG): providers do not bid (zero cost); each provider's capacity is
  D/m scaled by a factor f_j ~ U[0, 0.25], the seed's literal "scaled down using a random
  factor in [0, 0.25], so roughly no more than a quarter of the users win" (about an eighth
  of the demand fits). This is the set-up mercat's VCG goals are measured on. A wider
  reading, U[0, 0.5] (about a quarter of the demand fits, `WIDE_CAPACITY_FACTOR`), doubles
  the winners per provider and makes proofs of optimality much harder (docs/vcg.md);
  `capacity_factor` selects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from mercat.clearing.base import Seed, as_generator
from mercat.market.model import Allocation, Conflict, Market, Node, Request
from mercat.validation import integer, probability

#: Standard auction capacity factors: the seed's literal range, and the wider reading.
SEED_CAPACITY_FACTOR = (0.0, 0.25)
WIDE_CAPACITY_FACTOR = (0.0, 0.5)

CAPABILITIES = ("gpu", "tee", "fpga")
RESOURCES = ("cpu", "memory", "bandwidth")


def running_example() -> Market:
    """Seed 001's running example: t1 worth 6 needs both n1 and n2, t2 worth 4 runs on
    either, no node runs both, each node costs 1. V = {α∅, α1, α2, α3}; W(α1) = 4,
    W(α2) = W(α3) = 3."""
    return Market(
        requests=(Request("t1", 6.0, replicas=2), Request("t2", 4.0)),
        nodes=(Node("n1", cost=1.0), Node("n2", cost=1.0)),
        conflicts=(Conflict("t1", "t2", "node"),),
        name="seed 001 running example",
    )


def running_example_allocations() -> dict[str, Allocation]:
    """V of the running example under the seed's names: α∅ (nothing), α1 (t1 on n1 and n2),
    α2 (t2 on n1), α3 (t2 on n2)."""
    return {
        "α∅": Allocation.empty(),
        "α1": Allocation.from_nodes({"t1": ["n1", "n2"]}),
        "α2": Allocation.from_nodes({"t2": ["n1"]}),
        "α3": Allocation.from_nodes({"t2": ["n2"]}),
    }


def random_market(
    seed: Seed,
    n_requests: int = 6,
    n_nodes: int = 4,
    *,
    n_resources: int = 2,
    max_replicas: int = 2,
    capability_rate: float = 0.3,
    conflict_rate: float = 0.15,
    exclusive_rate: float = 0.15,
    fixed_costs: bool = True,
    unit_costs: bool = True,
    divisible: bool = False,
) -> Market:
    """A market that exercises every constraint kind: multi-resource capacities that bind,
    capabilities, replicas (indivisible only), node and market conflicts, exclusive nodes,
    fixed and per-unit costs. Values are drawn so that some requests are worth serving and
    some not."""
    n_requests = integer("n_requests", n_requests, minimum=0)
    n_nodes = integer("n_nodes", n_nodes, minimum=0)
    n_resources = integer("n_resources", n_resources, minimum=0)
    if n_resources > len(RESOURCES):
        raise ValueError(f"at most {len(RESOURCES)} resources")
    max_replicas = integer("max_replicas", max_replicas, minimum=1)
    probability("capability_rate", capability_rate)
    probability("conflict_rate", conflict_rate)
    probability("exclusive_rate", exclusive_rate)
    rng = as_generator(seed)
    resources = RESOURCES[:n_resources]

    def labels() -> frozenset[str]:
        return frozenset(c for c in CAPABILITIES if rng.random() < capability_rate)

    requests = []
    for i in range(n_requests):
        replicas = 1 if divisible else int(rng.integers(1, min(max_replicas, max(n_nodes, 1)) + 1))
        demand = tuple(float(np.round(rng.uniform(0.1, 1.0), 3)) for _ in resources)
        value = float(np.round(rng.uniform(0.5, 3.0) * replicas, 3))
        requests.append(Request(f"t{i + 1}", value, demand, replicas, labels()))
    # Capacities hold about two average requests, so they bind.
    nodes = []
    for j in range(n_nodes):
        nodes.append(
            Node(
                f"n{j + 1}",
                cost=float(np.round(rng.uniform(0.0, 1.5), 3)) if fixed_costs else 0.0,
                unit_costs=tuple(
                    float(np.round(rng.uniform(0.0, 0.5), 3)) if unit_costs else 0.0
                    for _ in resources
                ),
                capacity=tuple(float(np.round(rng.uniform(0.5, 2.0), 3)) for _ in resources),
                capabilities=frozenset(c for c in CAPABILITIES if rng.random() < 0.6),
            )
        )
    conflicts = [
        Conflict(a.id, b.id, "node" if rng.random() < 0.5 else "market")
        for a, b in combinations(requests, 2)
        if rng.random() < conflict_rate
    ]
    # Consecutive nodes are, with probability `exclusive_rate`, two instantiations of one
    # machine (different costs for different workloads): at most one of them is used.
    exclusive = [
        (nodes[j].id, nodes[j + 1].id)
        for j in range(0, n_nodes - 1, 2)
        if rng.random() < exclusive_rate
    ]
    return Market(
        requests=tuple(requests),
        nodes=tuple(nodes),
        conflicts=tuple(conflicts),
        resources=resources,
        divisible=divisible,
        name=f"random market ({n_requests} requests, {n_nodes} nodes)",
        exclusive_nodes=tuple(exclusive),
    )


@dataclass(frozen=True)
class AuctionArrays:
    """A seed-003 auction as arrays: per-unit bids and demands of users, per-unit costs and
    capacities of providers (the form the vectorised double auction works on)."""

    bids: np.ndarray
    demands: np.ndarray
    costs: np.ndarray
    capacities: np.ndarray


def _user_draws(rng: np.random.Generator, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    bids = rng.uniform(0.75, 1.25, n_users)
    demands = 1.0 - rng.random(n_users)  # U(0, 1]: never zero
    return bids, demands


def double_auction_arrays(
    seed: Seed,
    n_users: int,
    n_providers: int = 8,
    *,
    capacity_factor: tuple[float, float] = (0.5, 1.5),
) -> AuctionArrays:
    """Seed 003 §6.2's double-auction set-up as arrays (see the module docstring)."""
    n_users = integer("n_users", n_users, minimum=0)
    n_providers = integer("n_providers", n_providers, minimum=1)
    rng = as_generator(seed)
    bids, demands = _user_draws(rng, n_users)
    costs = 1.0 - rng.random(n_providers)  # U(0, 1]
    share = float(demands.sum()) / n_providers
    capacities = share * rng.uniform(*capacity_factor, n_providers)
    return AuctionArrays(bids, demands, costs, capacities)


def auction_market(arrays: AuctionArrays, *, divisible: bool, name: str = "") -> Market:
    """A single-resource ("bandwidth") market of users u1.. and providers p1.. from arrays."""
    requests = tuple(
        Request.bidding(f"u{i + 1}", b, d)
        for i, (b, d) in enumerate(zip(arrays.bids.tolist(), arrays.demands.tolist(), strict=True))
    )
    nodes = tuple(
        Node(f"p{j + 1}", unit_costs=(c,), capacity=(k,))
        for j, (c, k) in enumerate(
            zip(arrays.costs.tolist(), arrays.capacities.tolist(), strict=True)
        )
    )
    return Market(requests, nodes, resources=("bandwidth",), divisible=divisible, name=name)


def double_auction_market(
    seed: Seed,
    n_users: int,
    n_providers: int = 8,
    *,
    capacity_factor: tuple[float, float] = (0.5, 1.5),
) -> Market:
    """Seed 003 §5.2.1/§6.2: a divisible bandwidth market with bidding providers."""
    arrays = double_auction_arrays(seed, n_users, n_providers, capacity_factor=capacity_factor)
    return auction_market(
        arrays, divisible=True, name=f"double auction ({n_users} users, {n_providers} providers)"
    )


def standard_auction_arrays(
    seed: Seed,
    n_users: int,
    n_providers: int = 8,
    *,
    capacity_factor: tuple[float, float] = SEED_CAPACITY_FACTOR,
) -> AuctionArrays:
    """Seed 003 §5.2.2/§6.3's standard-auction set-up as arrays (costs are zero)."""
    n_users = integer("n_users", n_users, minimum=0)
    n_providers = integer("n_providers", n_providers, minimum=1)
    rng = as_generator(seed)
    bids, demands = _user_draws(rng, n_users)
    share = float(demands.sum()) / n_providers
    capacities = share * rng.uniform(*capacity_factor, n_providers)
    return AuctionArrays(bids, demands, np.zeros(n_providers), capacities)


def standard_auction_market(
    seed: Seed,
    n_users: int,
    n_providers: int = 8,
    *,
    capacity_factor: tuple[float, float] = SEED_CAPACITY_FACTOR,
) -> Market:
    """Seed 003 §5.2.2: each user's whole demand on one provider; providers do not bid."""
    arrays = standard_auction_arrays(seed, n_users, n_providers, capacity_factor=capacity_factor)
    return auction_market(
        arrays, divisible=False, name=f"standard auction ({n_users} users, {n_providers} providers)"
    )
