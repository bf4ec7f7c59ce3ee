"""The standard auction (seed 003 §5.2.2, Algorithm 1) as a task graph.

    Task 1      "allocate"      every provider: the welfare-maximising assignment x
    Task 2.g    "payments/g"    group g (≥ k+1 providers): Clarke payments of its users
    Task 3      "final"         every provider: gather the payments (data transfer), (x, p)

A is the project's VCG core on arrays (`mercat.clearing.vcg_exact.solve_welfare` over a
`ColumnPool`): the allocation is a proven welfare optimum W*, and user i pays the Clarke
pivot p_i = W*_{-i} - (W* - v_i), where W*_{-i} is the optimum without i. A user that x
does not serve pays 0 without a re-solve (x is feasible without it, so W*_{-i} = W*).

Users are dealt to the c groups round-robin, winners first: the cost is in the winners'
re-solves, and this spreads them evenly. Each W*_{-i} starts from the same columns, those
the allocation found, so a payment does not depend on which group computes it or in which
order: the distributed payments are bit for bit those of one process computing them all.

Bids: buy bids are users (price per unit, demand); sell bids are providers, whose quantity
is their capacity (providers do not bid in this auction: the price is ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mercat.auctioneer.bids import BUY, SELL, BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import Instance, graph_key
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.task_graph import Task, TaskGraph, groups
from mercat.errors import MalformedMessageError, NotProvenOptimalError

SOLVE_TIME_LIMIT = 3600.0
"""Per welfare problem. Providers must agree bit for bit, so no solve may stop on a clock
that runs differently at each of them; the round's task timeout bounds the wait instead."""


@dataclass(frozen=True)
class VcgAllocation:
    """Task 1's result: the assignment (provider index per user, -1 unserved), W*, and the
    columns found, from which every payment re-solve starts."""

    users: np.ndarray  # bidder indices of the users (buy bids)
    providers: np.ndarray  # bidder indices of the providers (sell bids)
    assignment: np.ndarray
    welfare: float
    columns: tuple[tuple[int, np.ndarray], ...]


def standard_auction_of(bids: BidVector) -> tuple[Any, np.ndarray, np.ndarray]:
    """(StandardAuction, user indices, provider indices) of the agreed bids."""
    from mercat.clearing.vcg_instance import standard_auction

    users = np.flatnonzero(bids.side == BUY)
    providers = np.flatnonzero(bids.side == SELL)
    auction = standard_auction(bids.price[users], bids.quantity[users], bids.quantity[providers])
    return auction, users, providers


def allocate(bids: BidVector) -> VcgAllocation:
    from mercat.clearing.vcg_colgen import ColumnPool
    from mercat.clearing.vcg_exact import solve_welfare

    users, providers = np.flatnonzero(bids.side == BUY), np.flatnonzero(bids.side == SELL)
    if len(users) == 0 or len(providers) == 0:
        return VcgAllocation(users, providers, np.full(len(users), -1, np.int64), 0.0, ())
    auction, users, providers = standard_auction_of(bids)
    pool = ColumnPool(auction)
    solution = solve_welfare(pool, time_limit=SOLVE_TIME_LIMIT)
    if not solution.proven_optimal:
        raise NotProvenOptimalError(
            f"the allocation is not proven optimal (gap {solution.gap:.2e}); Clarke "
            "payments need the optimum"
        )
    columns = tuple((pool.providers[c], pool.members[c]) for c in range(len(pool)))
    return VcgAllocation(users, providers, solution.assignment, solution.welfare, columns)


def user_groups(allocation: VcgAllocation, count: int) -> list[np.ndarray]:
    """Positions (among users) dealt round-robin to `count` groups, winners first."""
    served = allocation.assignment >= 0
    order = np.concatenate([np.flatnonzero(served), np.flatnonzero(~served)])
    return [order[g::count] for g in range(count)]


def clarke_payments(
    bids: BidVector, allocation: VcgAllocation, positions: np.ndarray
) -> np.ndarray:
    """p_i for the users at `positions` (indices among users), in that order."""
    from mercat.clearing.vcg_colgen import ColumnPool
    from mercat.clearing.vcg_exact import solve_welfare

    payments = np.zeros(len(positions))
    if len(positions) == 0 or len(allocation.providers) == 0:
        return payments
    auction, _, _ = standard_auction_of(bids)
    values = auction.values
    for k, i in enumerate(positions.tolist()):
        if allocation.assignment[i] < 0:
            continue  # x serves the others without i: W*_{-i} = W*, p_i = 0
        pool = ColumnPool(auction)
        for provider, members in allocation.columns:
            if i not in members:
                pool.add(provider, members)
        incumbent = allocation.assignment.copy()
        incumbent[i] = -1
        without = solve_welfare(pool, excluded=i, incumbent=incumbent, time_limit=SOLVE_TIME_LIMIT)
        if not without.proven_optimal:
            raise NotProvenOptimalError(f"W*_-{i} is not proven optimal (gap {without.gap:.2e})")
        payments[k] = without.welfare - (allocation.welfare - float(values[i]))
    return payments


def final_outcome(
    bids: BidVector, allocation: VcgAllocation, parts: list[np.ndarray], payments: list[np.ndarray]
) -> Outcome:
    transfers = np.zeros(len(bids))
    for positions, paid in zip(parts, payments, strict=True):
        if len(paid) != len(positions):
            raise MalformedMessageError("a payment task returned the wrong number of payments")
        transfers[allocation.users[positions]] = paid
    served = np.flatnonzero(allocation.assignment >= 0)
    return Outcome(
        "vcg",
        bids.ids,
        allocation.users[served],
        allocation.providers[allocation.assignment[served]],
        bids.quantity[allocation.users[served]],
        transfers,
        facts={"welfare": allocation.welfare, "winners": len(served)},
    )


def _encode_payments(payments: np.ndarray) -> bytes:
    return np.asarray(payments, dtype="<f8").tobytes()


def _decode_payments(data: bytes) -> np.ndarray:
    if len(data) % 8:
        raise MalformedMessageError("payments are float64s")
    return np.frombuffer(data, dtype="<f8")


class VcgInstance(Instance):
    """Allocation by all, Clarke payments by c groups, gathered by data transfer."""

    name = "vcg"

    def graph(self, bids: BidVector, params: ProtocolParams, seed: int) -> TaskGraph:
        count = params.payment_groups
        teams = groups(params.providers, count, params.k)
        tasks = [Task("allocate", params.providers, lambda _inputs: allocate(bids))]

        def payments_of(g: int) -> Task:
            def run(inputs: Mapping[str, Any]) -> np.ndarray:
                allocation = inputs["allocate"]
                return clarke_payments(bids, allocation, user_groups(allocation, count)[g])

            return Task(
                f"payments/{g}",
                teams[g],
                run,
                deps=("allocate",),
                encode=_encode_payments,
                decode=_decode_payments,
            )

        tasks += [payments_of(g) for g in range(count)]

        def gather(inputs: Mapping[str, Any]) -> Outcome:
            allocation = inputs["allocate"]
            parts = user_groups(allocation, count)
            return final_outcome(
                bids, allocation, parts, [inputs[f"payments/{g}"] for g in range(count)]
            )

        deps = ("allocate", *(f"payments/{g}" for g in range(count)))
        tasks.append(Task("final", params.providers, gather, deps=deps, heavy=False))
        return TaskGraph(tuple(tasks), "final", graph_key(self.name, bids, params, seed))

    def centralized(self, bids: BidVector, seed: int) -> Outcome:
        allocation = allocate(bids)
        everyone = np.arange(len(allocation.users))
        return final_outcome(
            bids, allocation, [everyone], [clarke_payments(bids, allocation, everyone)]
        )
