"""Proposals of seed 001's market-makers, and the standing (the "current best") they compete for.

A proposal (α_i, π_i, φ_i, π̄_i, φ̲_i) of market-maker i (seed 001, attempt 4) holds
- a valid allocation α_i ∈ V,
- a payment rule: π_i(t) for every request α_i serves, φ_i(n) for every node it uses,
- payment tolerances: a maximum payment π̄_i(t) ≥ π_i(t) and a minimum reward
  φ̲_i(n) ≤ φ_i(n) (attempts 1-3 have none: the tolerances equal the prices).

A proposal names exactly its own participants (served requests, used nodes): everyone else
pays and receives nothing, so a price for anyone else is refused (`InvalidProposalError`);
a missing price means 0.

The standing is what the sequential template keeps in memory: one proposal in the seed's
mechanism, or, with the specialization extension, a union of proposals that do not conflict
(no shared participant, and their union is in V).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from mercat.errors import InvalidProposalError
from mercat.market.model import Allocation, Market


def _finite(value: numbers.Real) -> bool:
    return math.isfinite(float(value))


def _prices(what: str, maker: str, table: Mapping[str, float], allowed: frozenset[str]) -> dict:
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in allowed:
            raise InvalidProposalError(
                f"proposal of {maker!r} sets a {what} for {key!r}, which its allocation does not "
                f"{'serve' if what.endswith('payment') else 'use'}"
            )
        # A plain float is the common case (every proposal a maker builds); the abstract
        # `numbers.Real` check costs more than the rest of the proposal's construction.
        if type(value) is float:
            if not math.isfinite(value):
                raise InvalidProposalError(
                    f"proposal of {maker!r}: {what} of {key!r} must be a finite number, "
                    f"got {value!r}"
                )
        elif isinstance(value, bool) or not isinstance(value, numbers.Real) or not _finite(value):
            raise InvalidProposalError(
                f"proposal of {maker!r}: {what} of {key!r} must be a finite number, got {value!r}"
            )
        out[key] = float(value)
    return {key: out.get(key, 0.0) for key in sorted(allowed)}


@dataclass(frozen=True)
class Proposal:
    """(α, π, φ, π̄, φ̲) of one market-maker; tolerances default to the prices themselves."""

    maker: str
    allocation: Allocation
    payments: Mapping[str, float] = field(default_factory=dict)
    rewards: Mapping[str, float] = field(default_factory=dict)
    max_payments: Mapping[str, float] | None = None
    min_rewards: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.maker, str) or not self.maker:
            raise InvalidProposalError(f"a proposal needs a maker id, got {self.maker!r}")
        if not isinstance(self.allocation, Allocation):
            raise InvalidProposalError(f"proposal of {self.maker!r} needs an Allocation")
        requests, nodes = self.allocation.served_requests, self.allocation.used_nodes
        pay = _prices("payment", self.maker, self.payments, requests)
        rew = _prices("reward", self.maker, self.rewards, nodes)
        top = _prices(
            "maximum payment",
            self.maker,
            pay if self.max_payments is None else self.max_payments,
            requests,
        )
        low = _prices(
            "minimum reward",
            self.maker,
            rew if self.min_rewards is None else self.min_rewards,
            nodes,
        )
        for t in requests:
            if top[t] < pay[t]:
                raise InvalidProposalError(
                    f"proposal of {self.maker!r}: maximum payment of {t!r} ({top[t]:.6g}) is "
                    f"below its payment ({pay[t]:.6g})"
                )
        for n in nodes:
            if low[n] > rew[n]:
                raise InvalidProposalError(
                    f"proposal of {self.maker!r}: minimum reward of {n!r} ({low[n]:.6g}) is "
                    f"above its reward ({rew[n]:.6g})"
                )
        object.__setattr__(self, "payments", pay)
        object.__setattr__(self, "rewards", rew)
        object.__setattr__(self, "max_payments", top)
        object.__setattr__(self, "min_rewards", low)

    # --- what the mechanism reads ------------------------------------------------------

    @property
    def requests(self) -> frozenset[str]:
        return self.allocation.served_requests

    @property
    def nodes(self) -> frozenset[str]:
        return self.allocation.used_nodes

    @cached_property
    def margin(self) -> float:
        """M(π, φ) = Σ π - Σ φ."""
        return math.fsum(self.payments.values()) - math.fsum(self.rewards.values())

    def request_slack(self, request_id: str) -> float:
        """π̄(t) - π(t): how much more the maker believes t would pay."""
        return self.max_payments[request_id] - self.payments[request_id]  # type: ignore[index]

    def node_slack(self, node_id: str) -> float:
        """φ(n) - φ̲(n): how much less the maker believes n would accept."""
        return self.rewards[node_id] - self.min_rewards[node_id]  # type: ignore[index]

    @cached_property
    def slack(self) -> float:
        """∇ over every participant: Σ_t (π̄ - π) + Σ_n (φ - φ̲)."""
        return math.fsum(self.request_slack(t) for t in self.requests) + math.fsum(
            self.node_slack(n) for n in self.nodes
        )

    def with_prices(self, payments: Mapping[str, float], rewards: Mapping[str, float]) -> Proposal:
        """The same allocation and tolerances with a new payment rule (attempt 4's re-pricing)."""
        return Proposal(
            self.maker, self.allocation, payments, rewards, self.max_payments, self.min_rewards
        )

    def check_against(self, market: Market) -> tuple[str, ...]:
        """Reasons this proposal names requests or nodes the market lacks (empty if none)."""
        requests, nodes = set(market.request_by_id), set(market.node_by_id)
        reasons = [f"unknown request {t!r}" for t in sorted(self.requests - requests)]
        reasons += [f"unknown node {n!r}" for n in sorted(self.nodes - nodes)]
        return tuple(reasons)


def shared_participants(
    a: Proposal, b: Proposal, by_workload: bool = False
) -> tuple[frozenset[str], frozenset[str]]:
    """(C_T, C_N): the requests and nodes allocated under both proposals (seed 001, attempt 3).

    With `by_workload` a node counts as shared only if it serves the same requests under
    both. That is the seed's own remark on workload-dependent costs ("instantiate multiple
    nodes ... each instantiation has a different cost"): a node with per-unit costs that
    serves another workload is another participant, with another cost. The mechanism uses
    it in every market that declares resources; without resources a node's cost does not
    depend on what it serves, and a node is one participant (the running example).
    """
    nodes = a.nodes & b.nodes
    if by_workload:
        nodes = frozenset(
            n for n in nodes if a.allocation.requests_on(n) == b.allocation.requests_on(n)
        )
    return a.requests & b.requests, nodes


@dataclass(frozen=True)
class Interference:
    """What makes allocations without a shared participant jointly invalid: requests in a
    "market" (state) conflict, and nodes in one exclusive group (one machine)."""

    requests: Mapping[str, frozenset[str]]  # request -> requests it state-conflicts with
    nodes: Mapping[str, frozenset[str]]  # node -> the other nodes of its exclusive groups

    @classmethod
    def of(cls, market: Market) -> Interference:
        requests: dict[str, set[str]] = {}
        for c in market.conflicts:
            if c.scope == "market":
                requests.setdefault(c.first, set()).add(c.second)
                requests.setdefault(c.second, set()).add(c.first)
        nodes: dict[str, set[str]] = {}
        for group in market.exclusive_nodes:
            for n in group:
                nodes.setdefault(n, set()).update(m for m in group if m != n)
        return cls(
            {k: frozenset(v) for k, v in requests.items()},
            {k: frozenset(v) for k, v in nodes.items()},
        )

    def between(self, a: Allocation, b: Allocation) -> bool:
        """Whether a request or node of `a` interferes with one of `b`."""
        none: frozenset[str] = frozenset()
        served, used = b.served_requests, b.used_nodes
        return any(self.requests.get(t, none) & served for t in a.served_requests) or any(
            self.nodes.get(n, none) & used for n in a.used_nodes
        )


def compatible(market: Market, a: Proposal, b: Proposal) -> bool:
    """Whether two proposals can run side by side: no shared participant and α_a ∪ α_b ∈ V.

    With mercat's constraint kinds, two allocations without a shared request or node are
    jointly valid unless a request of one is in a "market" conflict with a request of the
    other, or a node of one is in an exclusive group with a node of the other: capacities,
    node conflicts and replicas are all per node or per request.
    (tests/clearing/posted_price/test_posted_price_template.py holds this against `is_valid`.)
    """
    shared_t, shared_n = shared_participants(a, b)
    if shared_t or shared_n:
        return False
    return not Interference.of(market).between(a.allocation, b.allocation)


def merge(members: Iterable[Proposal], maker: str = "") -> Proposal:
    """The union of compatible proposals as one proposal (the specialization extension treats
    the conflicting part of the union as one holder)."""
    members = tuple(members)
    shares = tuple(s for m in members for s in m.allocation.shares)
    union = Allocation(shares)
    pay: dict[str, float] = {}
    rew: dict[str, float] = {}
    top: dict[str, float] = {}
    low: dict[str, float] = {}
    for m in members:
        pay.update(m.payments)
        rew.update(m.rewards)
        top.update(m.max_payments or {})
        low.update(m.min_rewards or {})
    name = maker or "+".join(dict.fromkeys(m.maker for m in members)) or "nobody"
    return Proposal(name, union, pay, rew, top, low)


@dataclass(frozen=True)
class Standing:
    """The current best: the proposals that stand, pairwise compatible (one without the
    specialization extension; none before the first proposal)."""

    members: tuple[Proposal, ...] = ()

    @classmethod
    def empty(cls) -> Standing:
        return cls(())

    def __bool__(self) -> bool:
        return bool(self.members)

    @cached_property
    def combined(self) -> Proposal:
        """Every member as one proposal (what clears if the process stops here)."""
        return merge(self.members, maker="standing")

    @property
    def allocation(self) -> Allocation:
        if len(self.members) == 1:  # the base mechanism: no union to build
            return self.members[0].allocation
        return self.combined.allocation

    @property
    def payments(self) -> Mapping[str, float]:
        return self.combined.payments

    @property
    def rewards(self) -> Mapping[str, float]:
        return self.combined.rewards

    @property
    def margin(self) -> float:
        return math.fsum(m.margin for m in self.members)

    @property
    def serves_anyone(self) -> bool:
        return any(m.requests or m.nodes for m in self.members)

    def margin_of(self, maker: str) -> float:
        """The margin the given maker earns from the members it holds."""
        return math.fsum(m.margin for m in self.members if m.maker == maker)

    def holders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.maker for m in self.members))
