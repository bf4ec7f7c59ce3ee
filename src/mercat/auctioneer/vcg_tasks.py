"""The standard auction (seed 003 §5.2.2, Algorithm 1) as a task graph.

    Task 1      "allocate"      every provider: the welfare-maximising assignment x
    Task 2.g    "payments/g"    group g (≥ k+1 providers): Clarke payments of its users
    Task 3      "final"         every provider: gather the payments (data transfer), (x, p)

A is the project's VCG mechanism (`mercat.clearing.vcg`), whose array core has exactly this
shape: `allocate` (Task 1) returns an `AllocationState` with the proven optimum W* (by the
exact multiple-knapsack solver, `mercat.clearing.vcg.mulknap`, on integer units: every
provider computes the same integers) and what the payments reuse;
`clarke_payments(state, users)` (Task 2.S) gives W*_{-i} for a subset of the winners, each
solve starting from the allocation alone (the allocation without i, bounded by W*), so a
payment is the same whichever group computes it and in whatever order; `payments_from`
(Task 3) turns them into payments.
The winners are dealt to the c groups round-robin (`split_users`); losers pay 0.

The bids become the mechanism's arrays exactly as `VCGMechanism.clear` builds them from a
market (a buyer's unit bid is value/quantity with value = price·quantity; capacities are
capped at the total demand), and providers receive what the users they serve pay, as
there: the output is `VCGMechanism().clear(market)` bit for bit (tests/auctioneer checks).

Bids: buy bids are users (price per unit, demand); sell bids are providers, whose quantity
is their capacity (providers do not bid in this auction: the price is ignored).

No solve may stop on a clock: the providers must agree bit for bit, and a time limit would
stop each of them at a different point. `SOLVE_TIME_LIMIT` is far above the round's task
timeout, which bounds the wait instead (a provider that takes longer ends the round in ⊥);
the multiple-knapsack search stops on node counts only (the mechanism's default node
limit, the same for every provider), and it runs without the GIL, so a provider's event
loop keeps answering while it computes.
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
from mercat.errors import MalformedMessageError

SOLVE_TIME_LIMIT = 24 * 3600.0


@dataclass(frozen=True)
class VcgAllocation:
    """Task 1's result: the mechanism's state, and where its users and providers sit
    among the bidders (None when there is nobody to allocate)."""

    users: np.ndarray  # bidder indices of the users (buy bids)
    providers: np.ndarray  # bidder indices of the providers (sell bids)
    state: Any  # mercat.clearing.vcg.AllocationState | None


def auction_arrays(bids: BidVector) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(users, providers, unit bids, demands, capacities) as `VCGMechanism.clear` computes
    them from the market of these bids."""
    users = np.flatnonzero(bids.side == BUY)
    providers = np.flatnonzero(bids.side == SELL)
    demands = bids.quantity[users].astype(float)
    unit = (bids.price[users] * demands) / demands  # the market's value / demand
    capacities = np.minimum(bids.quantity[providers].astype(float), demands.sum())
    return users, providers, unit, demands, capacities  # type: ignore[return-value]


def allocate(bids: BidVector, gap: float = 0.0) -> VcgAllocation:
    """Task 1. `gap` 0 proves the optimum; a positive relative gap accepts any assignment
    within it (payments are then intervals, the lower end charged; see `mercat.clearing.vcg`).
    """
    from mercat.clearing.vcg import mechanism as vcg
    from mercat.clearing.vcg.instance import standard_auction

    users, providers, unit, demands, capacities = auction_arrays(bids)
    if len(users) == 0 or len(providers) == 0:
        return VcgAllocation(users, providers, None)
    auction = standard_auction(unit, demands, capacities)
    state = vcg.allocate(auction, time_limit=SOLVE_TIME_LIMIT, target_gap=gap)
    return VcgAllocation(users, providers, state)


def payment_subsets(allocation: VcgAllocation, count: int) -> list[np.ndarray]:
    """The winners (indices among users) of each payment group."""
    from mercat.clearing.vcg.mechanism import split_users

    if allocation.state is None:
        return [np.zeros(0, dtype=np.int64) for _ in range(count)]
    return split_users(allocation.state.winners, count)


def payments_of(allocation: VcgAllocation, users: np.ndarray) -> Any:
    """Task 2.S: the mechanism's PaymentResult for these users (None: nobody to pay)."""
    from mercat.clearing.vcg.mechanism import clarke_payments

    if allocation.state is None or len(users) == 0:
        return None
    return clarke_payments(allocation.state, users)


def encode_payments(result: Any) -> bytes:
    """What a group hands on: users, W*_{-i} intervals and proofs. Not the timings (they
    differ between the group's members, and the members' bytes must be equal)."""
    if result is None:
        return b""
    parts = [
        np.asarray(result.users, "<i8").tobytes(),
        np.asarray(result.others_optimum_lower, "<f8").tobytes(),
        np.asarray(result.others_optimum_upper, "<f8").tobytes(),
        np.asarray(result.proven, np.uint8).tobytes(),
    ]
    return len(result.users).to_bytes(8, "little") + b"".join(parts)


def decode_payments(data: bytes) -> Any:
    from mercat.clearing.vcg.mechanism import PaymentResult

    if not data:
        return None
    n = int.from_bytes(data[:8], "little")
    if len(data) != 8 + 25 * n:
        raise MalformedMessageError("a payment result has the wrong length")
    cuts = [8, 8 + 8 * n, 8 + 16 * n, 8 + 24 * n, 8 + 25 * n]
    proven = np.frombuffer(data[cuts[3] : cuts[4]], np.uint8)
    if proven.size and proven.max() > 1:
        raise MalformedMessageError("a proof flag is 0 or 1")
    return PaymentResult(
        users=np.frombuffer(data[cuts[0] : cuts[1]], "<i8"),
        others_optimum_lower=np.frombuffer(data[cuts[1] : cuts[2]], "<f8"),
        others_optimum_upper=np.frombuffer(data[cuts[2] : cuts[3]], "<f8"),
        proven=proven.astype(bool),
        seconds=np.zeros(n),
    )


def final_outcome(
    bids: BidVector, allocation: VcgAllocation, subsets: list[np.ndarray], results: list[Any]
) -> Outcome:
    """Task 3: (x, p). Users pay their Clarke payment; each provider receives what the users
    it serves pay (as `VCGMechanism.clear`)."""
    from mercat.clearing.vcg.mechanism import payments_from

    transfers = np.zeros(len(bids))
    state = allocation.state
    if state is None:
        empty = np.zeros(0, dtype=np.int64)
        return Outcome("vcg", bids.ids, empty, empty, np.zeros(0), transfers, {"welfare": 0.0})
    for users, result in zip(subsets, results, strict=True):
        got = np.zeros(0, np.int64) if result is None else np.asarray(result.users)
        if not np.array_equal(got, users):
            raise MalformedMessageError("a payment group answered for other users")
    outcome = payments_from(state, [r for r in results if r is not None])
    winners = np.flatnonzero(outcome.assignment >= 0)
    rewards: dict[int, float] = {}
    for i in winners.tolist():  # in index order, as VCGMechanism sums them
        j = int(outcome.assignment[i])
        transfers[allocation.users[i]] = float(outcome.payments[i])
        rewards[j] = rewards.get(j, 0.0) + float(outcome.payments[i])
    for j, reward in rewards.items():
        transfers[allocation.providers[j]] = -reward
    return Outcome(
        "vcg",
        bids.ids,
        allocation.users[winners],
        allocation.providers[outcome.assignment[winners]],
        bids.quantity[allocation.users[winners]],
        transfers,
        facts={
            "welfare": outcome.welfare,
            "bound": outcome.bound,
            "proven_optimal": outcome.proven_optimal,
            "payments_exact": outcome.payments_exact,
            "payment_uncertainty": outcome.payment_uncertainty,
            "winners": len(winners),
        },
    )


class VcgInstance(Instance):
    """Allocation by all, Clarke payments by c groups, gathered by data transfer."""

    name = "vcg"

    def graph(self, bids: BidVector, params: ProtocolParams, seed: int) -> TaskGraph:
        count = params.payment_groups
        teams = groups(params.providers, count, params.k)
        gap = params.vcg_gap
        tasks = [Task("allocate", params.providers, lambda _inputs: allocate(bids, gap))]

        def payment_task(g: int) -> Task:
            def run(inputs: Mapping[str, Any]) -> Any:
                allocation = inputs["allocate"]
                return payments_of(allocation, payment_subsets(allocation, count)[g])

            return Task(
                f"payments/{g}",
                teams[g],
                run,
                deps=("allocate",),
                encode=encode_payments,
                decode=decode_payments,
            )

        tasks += [payment_task(g) for g in range(count)]

        def gather(inputs: Mapping[str, Any]) -> Outcome:
            allocation = inputs["allocate"]
            subsets = payment_subsets(allocation, count)
            results = [inputs[f"payments/{g}"] for g in range(count)]
            return final_outcome(bids, allocation, subsets, results)

        deps = ("allocate", *(f"payments/{g}" for g in range(count)))
        tasks.append(Task("final", params.providers, gather, deps=deps, heavy=False))
        return TaskGraph(tuple(tasks), "final", graph_key(self.name, bids, params, seed))

    def centralized(
        self, bids: BidVector, seed: int, params: ProtocolParams | None = None
    ) -> Outcome:
        allocation = allocate(bids, params.vcg_gap if params is not None else 0.0)
        [winners] = payment_subsets(allocation, 1)
        return final_outcome(bids, allocation, [winners], [payments_of(allocation, winners)])
