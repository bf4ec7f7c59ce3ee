"""`optimal`: the welfare-maximising allocation under every constraint of V (HiGHS MILP).

This is the yardstick of seed 001 (what attempt 4's market-makers should converge to) and the
reference against which the auctions of seed 003 are measured. The allocation maximises
W(α) = Σ served values - Σ used nodes' costs over the MILP encoding of V
(`mercat.market.constraints.encode`); the certificate reports HiGHS's dual bound and gap, and
`proven` is true only when HiGHS reports the optimum within `rel_gap`.

Prices: the allocation rule alone says nothing about payments; `optimal` charges the
zero-margin, individually rational prices of `mercat.market.economics.zero_margin_prices` (nodes
receive their cost, requests share the welfare in proportion to their value), which is the
outcome seed 001's attempt 4 reaches at equilibrium: maximal welfare, zero margin, IR.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from mercat.clearing.base import Mechanism, Property, Seed, as_generator
from mercat.errors import SolverError
from mercat.market.constraints import encode, is_valid, node_load
from mercat.market.economics import welfare, zero_margin_prices
from mercat.market.model import Allocation, Clearing, Market, capacity_limit, relative_gap
from mercat.validation import integer, non_negative, positive


@dataclass(frozen=True)
class WelfareOptimum:
    """The best allocation found, its welfare, and the solver's certificate."""

    allocation: Allocation
    welfare: float
    bound: float
    gap: float
    proven: bool
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False)


MAX_COVER_ROUNDS = 50
"""How many times `solve_welfare` may re-solve after cutting off a set that HiGHS packed onto
a node within its own tolerance but over `capacity_limit` (each round forbids one such set)."""


def overfull(market: Market, allocation: Allocation) -> list[tuple[str, tuple[str, ...]]]:
    """(node, the requests it serves) for every node loaded beyond `capacity_limit`."""
    found = []
    for node_id in sorted(allocation.used_nodes):
        limits = [capacity_limit(c) for c in market.node(node_id).capacity]
        load = node_load(market, allocation, node_id)
        if any(used > limit for used, limit in zip(load, limits, strict=True)):
            found.append((node_id, tuple(sorted(allocation.requests_on(node_id)))))
    return found


def solve_welfare(
    market: Market,
    *,
    time_limit: float | None = None,
    rel_gap: float = 1e-9,
    seed: int = 0,
    threads: int = 1,
) -> WelfareOptimum:
    """max_{α ∈ V} W(α) as a MILP (plain formulation: the reference for faster solvers).

    HiGHS accepts a point up to its feasibility tolerance, so in an indivisible market it
    may pack a node a hair (about 1e-9 of the limit) beyond `capacity_limit`: every valid
    allocation stays feasible for it, and a few that are not slip in. When the answer is
    such an allocation, the set of requests on the overfull node cannot share that node, so
    the cover cut Σ_{t ∈ S} x(t, n) ≤ |S| - 1 removes it (and every superset) exactly, and
    HiGHS solves again: the optimum over what is left is the optimum over V, under the same
    rule as the checker. (Divisible answers are scaled into V by `decode` instead.)"""
    from mercat.clearing.highs import solve_max

    encoding = encode(market)
    start = time.perf_counter()
    rounds = 0
    while True:
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - start), 0.0)
        result = solve_max(encoding, time_limit=left, rel_gap=rel_gap, seed=seed, threads=threads)
        allocation = encoding.decode(result.x, market)
        over = [] if market.divisible else overfull(market, allocation)
        if not over or rounds == MAX_COVER_ROUNDS:
            break
        rounds += 1
        encoding = encoding.extended(
            [
                (
                    {encoding.pair_columns[(t, n)]: 1.0 for t in requests},
                    -math.inf,
                    float(len(requests) - 1),
                )
                for n, requests in over
            ]
        )
    validity = is_valid(market, allocation)
    if not validity:
        raise SolverError(f"HiGHS returned an allocation outside V: {'; '.join(validity.reasons)}")
    achieved = welfare(market, allocation)
    if achieved < 0:  # a time-limited incumbent can be worse than serving nobody
        allocation, achieved = Allocation.empty(), 0.0
    bound = max(result.bound, achieved)
    return WelfareOptimum(
        allocation=allocation,
        welfare=achieved,
        bound=bound,
        gap=relative_gap(bound, achieved),
        proven=result.proven,
        diagnostics={
            "solver": "highs",
            "status": result.status,
            "columns": encoding.num_cols,
            "rows": encoding.num_rows,
            "nodes_explored": result.nodes,
            "cover_cuts": rounds,
            "seconds": time.perf_counter() - start,
        },
    )


class OptimalMechanism(Mechanism):
    """Welfare-maximising allocation (HiGHS MILP) with zero-margin IR prices."""

    name = "optimal"
    summary = "welfare-maximising allocation under all constraints (HiGHS), zero-margin prices"
    properties = frozenset(
        {
            Property.WELFARE_MAXIMISING,
            Property.INDIVIDUALLY_RATIONAL,
            Property.BUDGET_BALANCED,
            Property.ZERO_MARGIN,
        }
    )

    def __init__(
        self, time_limit: float | None = None, rel_gap: float = 1e-9, threads: int = 1
    ) -> None:
        self.time_limit = None if time_limit is None else float(positive("time_limit", time_limit))
        self.rel_gap = float(non_negative("rel_gap", rel_gap))
        self.threads = integer("threads", threads, minimum=1)

    def clear(self, market: Market, *, seed: Seed = None) -> Clearing:
        solver_seed = int(as_generator(seed).integers(2**31 - 1))
        optimum = solve_welfare(
            market,
            time_limit=self.time_limit,
            rel_gap=self.rel_gap,
            seed=solver_seed,
            threads=self.threads,
        )
        payments, rewards = zero_margin_prices(market, optimum.allocation)
        return Clearing(
            mechanism=self.name,
            allocation=optimum.allocation,
            payments=payments,
            rewards=rewards,
            bound=optimum.bound,
            gap=optimum.gap,
            proven=optimum.proven,
            diagnostics={**optimum.diagnostics, "welfare": optimum.welfare},
        )
