"""The nouns of a compute market: requests, nodes, conflicts, markets, allocations, clearings.

One model expresses every market of the seeds:

- seed 001 (general constraints V): a request t has a value v_t for being served, needs
  `replicas` distinct nodes (t1 of the running example needs both n1 and n2), may need
  capabilities (hardware, software) that a node must offer, and uses a resource vector on
  each node that serves it; a node n has a cost c_n if it is used at all (`cost`) and a
  multi-dimensional capacity; pairs of requests may conflict.
- seed 003 §5.2.1 (double auction): the market is `divisible`; a request is a user with a
  per-unit bid and a bandwidth demand (`Request.bidding`), served in any amount up to its
  demand, split across providers; a node is a provider with a per-unit cost (`unit_costs`)
  and a capacity.
- seed 003 §5.2.2 (standard auction): indivisible, one replica: each user's whole demand
  goes to a single provider; providers do not bid (zero costs).

Conventions:
- Every vector (a request's `demand`, a node's `unit_costs` and `capacity`) has one entry per
  resource of the market (`Market.resources`), in that order; `math.inf` capacity means
  unlimited.
- Ids are unique across requests and nodes, so a payment or a reward is never ambiguous.
- Conflicts have a scope: `"node"` (the two requests never run on the same node: the
  running example's "no node runs both") or `"market"` (at most one of them is served: a
  state conflict). Groups of `exclusive_nodes` are instantiations of one machine with
  different costs: at most one node of a group is used.
- An allocation holds shares: share(t, n) is the fraction of request t's demand that node n
  serves. Indivisible markets use shares of exactly 1 (α(t) is a set of nodes); divisible
  markets use fractions whose sum over nodes is at most 1.

`Market` validates itself on construction and raises `InvalidMarketError` naming the
offending object; the JSON loader (`mercat.market.market_io`) relies on that one check.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from mercat.errors import InvalidMarketError
from mercat.market.names import check_name
from mercat.untrusted import shown

FEASIBILITY_TOL = 1e-9
"""Slack allowed on a capacity (relative to max(1, capacity), see `capacity_limit`) and on a
served fraction (a divisible request may be served 1 + FEASIBILITY_TOL times over, an
indivisible share may differ from 1 by as much)."""


def capacity_limit(capacity: float) -> float:
    """The most a node may carry of a resource of capacity C: C + FEASIBILITY_TOL·max(1, C).

    This is mercat's one capacity rule: a set of requests fits a node exactly when, for every
    resource, the sum of their demands is at most this limit. The checker (`is_valid`), the
    MILP (`constraints.encode`, `clearing.optimal`), the VCG knapsacks and column pool, the
    brute force and every mechanism test a load against this number and nothing else, so
    they all accept the same allocations. The slack is relative above 1 (float sums of large
    demands round by about 1e-16 of their size) and absolute below it (a capacity of 0 takes
    loads up to 1e-9: a demand that small is rounding noise). Unlimited (inf) stays inf.
    The numpy form `capacity + FEASIBILITY_TOL * np.maximum(1.0, capacity)` gives the same
    floats, element by element.
    """
    return capacity + FEASIBILITY_TOL * max(1.0, capacity)


ConflictScope = Literal["node", "market"]
CONFLICT_SCOPES: tuple[str, ...] = ("node", "market")


@dataclass(frozen=True)
class Request:
    """A compute request t: served in full it is worth `value` (v_t) to its user.

    `demand[r]` is what the request uses of resource r on *each* node that serves it (a
    replica runs the whole request). `replicas` distinct nodes must serve it; each of them
    must offer every capability in `capabilities`.
    """

    id: str
    value: float
    demand: tuple[float, ...] = ()
    replicas: int = 1
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _coerce(self, vectors=("demand",))

    @classmethod
    def bidding(
        cls, id: str, bid: float, quantity: float, *, capabilities: Iterable[str] = ()
    ) -> Request:
        """A seed-003 user: `bid` per unit of the (single) resource, `quantity` units wanted."""
        return cls(
            id=id,
            value=float(bid) * float(quantity),
            demand=(float(quantity),),
            capabilities=frozenset(capabilities),
        )

    @property
    def quantity(self) -> float:
        """Units wanted of the first resource (1 for a request without resource demand)."""
        return self.demand[0] if self.demand else 1.0

    @property
    def unit_bid(self) -> float:
        """Value per unit of the first resource: the per-unit bid of seed 003."""
        q = self.quantity
        return self.value / q if q > 0 else math.inf


@dataclass(frozen=True)
class Node:
    """A node (provider) n: `cost` (c_n) if it serves anything, plus `unit_costs[r]` per unit
    of resource r it serves, within `capacity[r]`; it offers `capabilities`.

    `weight` is the node's selection weight for mechanisms that pick nodes at random (seed
    000's stake-weighted selection: the round pipeline sets it to the asset's stake); every
    other mechanism ignores it."""

    id: str
    cost: float = 0.0
    unit_costs: tuple[float, ...] = ()
    capacity: tuple[float, ...] = ()
    capabilities: frozenset[str] = frozenset()
    weight: float = 1.0

    def __post_init__(self) -> None:
        _coerce(self, vectors=("unit_costs", "capacity"))


@dataclass(frozen=True)
class Conflict:
    """Requests `first` and `second` may not run on one node ("node") or both run ("market")."""

    first: str
    second: str
    scope: ConflictScope = "node"


@dataclass(frozen=True)
class Market:
    """Requests, nodes, the pairwise conflicts between requests, and the resources measured.

    `exclusive_nodes` lists groups of nodes of which at most one may serve anything: seed
    001's way to give one machine different costs for different workloads ("instantiate
    multiple nodes, where a valid allocation can only allocate to one of these
    instantiations").
    """

    requests: tuple[Request, ...]
    nodes: tuple[Node, ...]
    conflicts: tuple[Conflict, ...] = ()
    resources: tuple[str, ...] = ()
    divisible: bool = False
    name: str = ""
    exclusive_nodes: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        # Accept any iterable from callers; store tuples so the market stays immutable.
        for attr in ("requests", "nodes", "conflicts", "resources"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        groups = self.exclusive_nodes
        if isinstance(groups, list | tuple) and all(isinstance(g, list | tuple) for g in groups):
            object.__setattr__(self, "exclusive_nodes", tuple(tuple(g) for g in groups))
        _validate(self)

    @classmethod
    def of_valid_parts(
        cls,
        requests: tuple[Request, ...],
        nodes: tuple[Node, ...],
        resources: tuple[str, ...],
        *,
        divisible: bool = False,
        name: str = "",
    ) -> Market:
        """A market built without `_validate`, for callers whose parts are valid by
        construction: the round pipeline builds each round's market from integer offers and
        terms the book checked when their owners signed them (non-negative, finite, unique
        ids, vectors of the market's length), and validating a hundred nodes again every round
        would cost more than clearing it. Everyone else uses the constructor."""
        market = object.__new__(cls)
        for attr, value in (
            ("requests", tuple(requests)),
            ("nodes", tuple(nodes)),
            ("conflicts", ()),
            ("resources", tuple(resources)),
            ("divisible", divisible),
            ("name", name),
            ("exclusive_nodes", ()),
        ):
            object.__setattr__(market, attr, value)
        return market

    @cached_property
    def request_by_id(self) -> dict[str, Request]:
        return {t.id: t for t in self.requests}

    @cached_property
    def node_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def request(self, request_id: str) -> Request:
        try:
            return self.request_by_id[request_id]
        except KeyError:
            raise InvalidMarketError(f"unknown request {request_id!r}") from None

    def node(self, node_id: str) -> Node:
        try:
            return self.node_by_id[node_id]
        except KeyError:
            raise InvalidMarketError(f"unknown node {node_id!r}") from None

    def without_requests(self, request_ids: Iterable[str]) -> Market:
        """The same market with some requests (and their conflicts) removed (VCG's W_{-i})."""
        drop = frozenset(request_ids)
        return Market(
            requests=tuple(t for t in self.requests if t.id not in drop),
            nodes=self.nodes,
            conflicts=tuple(
                c for c in self.conflicts if c.first not in drop and c.second not in drop
            ),
            resources=self.resources,
            divisible=self.divisible,
            name=self.name,
            exclusive_nodes=self.exclusive_nodes,
        )


@dataclass(frozen=True)
class Allocation:
    """α: `shares` holds (request id, node id, fraction) with fraction in (0, 1], sorted.

    Build one with `Allocation.from_nodes({"t1": ["n1", "n2"]})` (indivisible) or
    `Allocation.from_shares({"u1": {"p1": 0.25}})` (divisible). Zero shares are dropped, so
    two allocations that serve the same things compare equal.
    """

    shares: tuple[tuple[str, str, float], ...] = ()

    def __post_init__(self) -> None:
        cleaned: dict[tuple[str, str], float] = {}
        for entry in self.shares:
            request_id, node_id, fraction = entry
            if (request_id, node_id) in cleaned:
                raise InvalidMarketError(
                    f"allocation lists request {request_id!r} on node {node_id!r} twice"
                )
            if not isinstance(fraction, numbers.Real) or not math.isfinite(fraction):
                raise InvalidMarketError(
                    f"share of {request_id!r} on {node_id!r} must be a finite number, "
                    f"got {fraction!r}"
                )
            if fraction < 0:
                raise InvalidMarketError(
                    f"share of {request_id!r} on {node_id!r} is negative ({fraction})"
                )
            if fraction > 0:
                cleaned[(request_id, node_id)] = float(fraction)
        ordered = tuple((t, n, f) for (t, n), f in sorted(cleaned.items()))
        object.__setattr__(self, "shares", ordered)

    @classmethod
    def empty(cls) -> Allocation:
        return cls(())

    @classmethod
    def from_nodes(cls, nodes_by_request: Mapping[str, Iterable[str]]) -> Allocation:
        """Indivisible α: each request runs (in full) on the given set of nodes."""
        return cls(tuple((t, n, 1.0) for t, nodes in nodes_by_request.items() for n in nodes))

    @classmethod
    def from_shares(cls, shares: Mapping[str, Mapping[str, float]]) -> Allocation:
        """Divisible α: request -> node -> fraction of the request's demand."""
        return cls(tuple((t, n, f) for t, row in shares.items() for n, f in row.items()))

    @cached_property
    def _by_request(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for t, n, f in self.shares:
            table.setdefault(t, {})[n] = f
        return table

    @cached_property
    def _by_node(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for t, n, f in self.shares:
            table.setdefault(n, {})[t] = f
        return table

    def nodes_of(self, request_id: str) -> frozenset[str]:
        """α(t): the nodes that serve (part of) request t."""
        return frozenset(self._by_request.get(request_id, ()))

    def requests_on(self, node_id: str) -> frozenset[str]:
        """α⁻¹(n): the requests that node n serves (part of)."""
        return frozenset(self._by_node.get(node_id, ()))

    def shares_of(self, request_id: str) -> dict[str, float]:
        return dict(self._by_request.get(request_id, {}))

    def shares_on(self, node_id: str) -> dict[str, float]:
        return dict(self._by_node.get(node_id, {}))

    def share(self, request_id: str, node_id: str) -> float:
        return self._by_request.get(request_id, {}).get(node_id, 0.0)

    @property
    def served_requests(self) -> frozenset[str]:
        """Requests with α(t) ≠ ∅."""
        return frozenset(self._by_request)

    @property
    def used_nodes(self) -> frozenset[str]:
        """Nodes with α⁻¹(n) ≠ ∅."""
        return frozenset(self._by_node)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """request -> node -> share, for JSON output."""
        return {t: dict(row) for t, row in self._by_request.items()}


@dataclass(frozen=True)
class Clearing:
    """What a mechanism returns: (α, π, φ) and a certificate about α's welfare.

    - `payments[t]` is π(t), what request t pays; `rewards[n]` is φ(n), what node n receives;
      a missing id means 0.
    - `bound`: a proven upper bound on the welfare of *any* valid allocation (None if the
      mechanism knows none); `gap`: (bound - W(α)) / max(|bound|, 1e-12) (None without a
      bound); `proven`: α is proven welfare-maximal (within the solver's tolerance).
    - `diagnostics`: free-form facts (solver status, timings, marginal bids ...); they do
      not take part in equality, so two runs with one seed compare equal.
    """

    mechanism: str
    allocation: Allocation
    payments: Mapping[str, float] = field(default_factory=dict)
    rewards: Mapping[str, float] = field(default_factory=dict)
    bound: float | None = None
    gap: float | None = None
    proven: bool = False
    diagnostics: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def payment(self, request_id: str) -> float:
        return float(self.payments.get(request_id, 0.0))

    def reward(self, node_id: str) -> float:
        return float(self.rewards.get(node_id, 0.0))


def relative_gap(bound: float, objective: float) -> float:
    """(bound - objective) / max(|bound|, 1e-12), never below 0; inf without a finite bound."""
    if not math.isfinite(bound):
        return math.inf
    return max(0.0, (bound - objective) / max(abs(bound), 1e-12))


# --- validation ------------------------------------------------------------------------


def _coerce(obj: Request | Node, vectors: tuple[str, ...]) -> None:
    """Lists become tuples and sets frozensets, so callers may pass either; anything else is
    left for `Market` to reject with a message."""
    for attr in vectors:
        value = getattr(obj, attr)
        if isinstance(value, list):
            object.__setattr__(obj, attr, tuple(value))
    if isinstance(obj.capabilities, set | list | tuple):
        object.__setattr__(obj, "capabilities", frozenset(obj.capabilities))


MAX_AMOUNT = 1e15
"""The largest magnitude of a value, cost, demand or capacity (infinite capacities aside).
Beyond it float64 sums of a market's amounts lose the 1e-9 relative precision that welfare
comparisons and the solvers' tolerances rely on (2^53 ≈ 9·10^15), and extreme values
overflow sums outright."""


def _quoted(value: object) -> str:
    """`repr(value)` for a message, cut to a few dozen characters (ids come from outside)."""
    return repr(value) if isinstance(value, str) and len(value) <= 40 else shown(value)


def _name(name: str) -> str:
    """A resource name as a message writes it after a path (`[cpu]`), cut when long (it is
    printable: `check_name`)."""
    return name if len(name) <= 40 else shown(name)


def _number(what: str, value: object, *, minimum: float | None = 0.0, inf_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidMarketError(f"{what} must be a number, got {shown(value)}")
    if math.isnan(value) or (math.isinf(value) and not inf_ok):
        raise InvalidMarketError(f"{what} must be finite, got {shown(value)}")
    if math.isfinite(value) and abs(value) > MAX_AMOUNT:
        raise InvalidMarketError(
            f"{what} must be at most {MAX_AMOUNT:g} in magnitude, got {shown(value)}"
        )
    if minimum is not None and value < minimum:
        raise InvalidMarketError(f"{what} must be >= {minimum:g}, got {shown(value)}")


def _vector(what: str, vector: object, size: int, resources: tuple[str, ...], **kw: Any) -> None:
    """`resources`: the resource names as messages write them (`_name`)."""
    if not isinstance(vector, tuple):
        raise InvalidMarketError(f"{what} must be a tuple of numbers, got {shown(vector)}")
    if len(vector) != size:
        raise InvalidMarketError(
            f"{what} has {len(vector)} entries but the market has {size} resources "
            f"{shown(list(resources))}"
        )
    for r, x in zip(resources, vector, strict=True):
        _number(f"{what}[{r}]", x, **kw)


def _labels(owner: str, labels: object) -> None:
    """The capabilities of `owner` ("request 't1'"): a frozenset of names."""
    if not isinstance(labels, frozenset):
        raise InvalidMarketError(
            f"capabilities of {owner} must be a frozenset of non-empty strings, got {shown(labels)}"
        )
    for label in labels:
        check_name(f"capability of {owner}", label)


def _validate(market: Market) -> None:
    if not isinstance(market.name, str):
        raise InvalidMarketError(f"the market's name must be a string, got {shown(market.name)}")
    if market.name:  # (a market may have no name)
        check_name("the market's name", market.name)
    resources = market.resources
    for r in resources:
        check_name("resource name", r)
    if len(set(resources)) != len(resources):
        raise InvalidMarketError(f"duplicate resource name in {shown(list(resources))}")
    if not isinstance(market.divisible, bool):
        raise InvalidMarketError(f"divisible must be true or false, got {shown(market.divisible)}")
    k = len(resources)
    names = tuple(_name(r) for r in resources)  # as messages write them
    seen: dict[str, str] = {}
    for t in market.requests:
        if not isinstance(t, Request):
            raise InvalidMarketError(f"requests must be Request objects, got {shown(t)}")
        _check_id(t.id, "request", seen)
        tid = _quoted(t.id)
        _number(f"value of request {tid}", t.value)
        _vector(f"demand of request {tid}", t.demand, k, names)
        if isinstance(t.replicas, bool) or not isinstance(t.replicas, int) or t.replicas < 1:
            raise InvalidMarketError(
                f"replicas of request {tid} must be an integer >= 1, got {shown(t.replicas)}"
            )
        if t.replicas > MAX_AMOUNT:  # a count the solvers' float arithmetic cannot hold
            raise InvalidMarketError(
                f"replicas of request {tid} must be at most {MAX_AMOUNT:g}, got {shown(t.replicas)}"
            )
        if market.divisible and t.replicas != 1:
            raise InvalidMarketError(
                f"request {tid} asks for {t.replicas} replicas, but a divisible market "
                "splits demand across nodes and allows 1 replica only"
            )
        _labels(f"request {tid}", t.capabilities)
    for n in market.nodes:
        if not isinstance(n, Node):
            raise InvalidMarketError(f"nodes must be Node objects, got {shown(n)}")
        _check_id(n.id, "node", seen)
        nid = _quoted(n.id)
        _number(f"cost of node {nid}", n.cost)
        _vector(f"unit_costs of node {nid}", n.unit_costs, k, names)
        _vector(f"capacity of node {nid}", n.capacity, k, names, inf_ok=True)
        _labels(f"node {nid}", n.capabilities)
        _number(f"weight of node {nid}", n.weight)
    pairs: set[tuple[frozenset[str], str]] = set()
    for c in market.conflicts:
        if not isinstance(c, Conflict):
            raise InvalidMarketError(f"conflicts must be Conflict objects, got {shown(c)}")
        for rid in (c.first, c.second):
            if seen.get(rid) != "request":
                kind = f" (it is a {seen[rid]})" if rid in seen else ""
                raise InvalidMarketError(
                    f"conflict {shown(c.first)}-{shown(c.second)} names unknown request "
                    f"{shown(rid)}{kind}"
                )
        if c.first == c.second:
            raise InvalidMarketError(f"request {shown(c.first)} cannot conflict with itself")
        if c.scope not in CONFLICT_SCOPES:
            raise InvalidMarketError(
                f"conflict {shown(c.first)}-{shown(c.second)} has scope {shown(c.scope)}; "
                f"expected one of {', '.join(CONFLICT_SCOPES)}"
            )
        key = (frozenset((c.first, c.second)), c.scope)
        if key in pairs:
            raise InvalidMarketError(
                f"duplicate conflict {shown(c.first)}-{shown(c.second)} (scope {shown(c.scope)})"
            )
        pairs.add(key)
    if not isinstance(market.exclusive_nodes, tuple):
        raise InvalidMarketError(
            f"exclusive_nodes must be a list of node-id lists, got {shown(market.exclusive_nodes)}"
        )
    for group in market.exclusive_nodes:
        if not isinstance(group, tuple) or len(group) < 2:
            raise InvalidMarketError(
                f"an exclusive node group needs at least 2 node ids, got {shown(group)}"
            )
        if len(set(group)) != len(group):
            raise InvalidMarketError(f"exclusive node group {shown(list(group))} repeats a node")
        for nid in group:
            if seen.get(nid) != "node":
                kind = f" (it is a {seen[nid]})" if isinstance(nid, str) and nid in seen else ""
                raise InvalidMarketError(
                    f"exclusive node group {shown(list(group))} names unknown node "
                    f"{shown(nid)}{kind}"
                )


def _check_id(identifier: object, kind: str, seen: dict[str, str]) -> None:
    identifier = check_name(f"{kind} id", identifier)
    if identifier in seen:
        raise InvalidMarketError(
            f"duplicate id {shown(identifier)} (used by a {seen[identifier]} and a {kind}); "
            "ids must be unique across requests and nodes"
        )
    seen[identifier] = kind
