"""What owners sign about the things they put on the market: an asset's offer, a request's terms.

Both travel inside signed ledger messages (`mercat.ledger.messages.PostOffer`, `PostRequest`),
so they hold integers and strings only (a signed payload carries no floats):

- amounts are integer base units (the book's `unit` base units make one token);
- resources are counted in integer units the market agrees on (GPU-milliseconds, MiB ...):
  a server's `capacity` per resource and round, a request's `demand` per replica;
- a divisible request may be served in parts: a task serves a `fraction` of its demand, in
  parts per billion (`PPB`), so capacity is checked exactly in integers:
  Σ demand·fraction ≤ capacity·PPB.

An **offer** (`Offer`) names an asset's kind and terms. A *server* offers capacity per
resource, capabilities, a fixed `cost` if it is used in a round and `unit_costs` per unit it
serves: the clearing treats it as a node. An *app*, *dataset* or *model* asset is bound to a
task because a request names it (by id, or by the CID of its content); its `cost` is its
price per use. Nobody, the operator included, can bind an asset without its owner's offer,
or pay it below its ask (`mercat.runtime.money.check_open`).

A **request** (`RequestTerms`) says what the requester wants and the most it pays:
`max_price` (escrowed when the request is posted: the book's one-line guarantee that it can
pay), the resources each replica needs, how many replicas, capabilities, the assets to bind,
the inputs by CID, the workload, the SLA (`deadline_ms`: a task that takes longer has not
met it) and the last round in which it may be served (`expires`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal

from mercat.errors import MalformedMessageError
from mercat.untrusted import shown

PPB = 10**9
"""Parts per billion: the unit of a task's `fraction` of its request's demand."""

MAX_INT = 2**62
"""Every integer a book stores (amounts, units, rounds) lies in [0, 2^62)."""

AssetKind = Literal["server", "app", "dataset", "model"]
ASSET_KINDS: tuple[str, ...] = ("server", "app", "dataset", "model")

NEVER = MAX_INT - 1
"""`expires` of a request that may wait for any number of rounds."""

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CID = re.compile(r"[A-Za-z0-9]{1,128}")
_TEXT = re.compile(r"[\x20-\x7e]{0,256}")
MAX_RESOURCES = 32
MAX_LABELS = 64
MAX_BOUND = 16
SEALABLE = frozenset({"inputs", "output"})


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise MalformedMessageError(f"{what} must be 1-64 of [A-Za-z0-9_.-], got {shown(value)}")
    return value


def _int(value: object, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value < MAX_INT:
        raise MalformedMessageError(
            f"{what} must be an integer in [{minimum}, 2^62), got {shown(value)}"
        )
    return value


def _cid(value: object, what: str) -> str:
    if not isinstance(value, str) or not _CID.fullmatch(value):
        raise MalformedMessageError(
            f"{what} must be a CID (1-128 letters and digits), got {shown(value)}"
        )
    return value


def _amounts(value: object, what: str) -> tuple[tuple[str, int], ...]:
    """A {resource: integer} mapping as sorted pairs without zero entries."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = [tuple(pair) for pair in value]
        if not all(len(pair) == 2 for pair in items):
            raise MalformedMessageError(f"{what} must map resource names to integers")
    else:
        raise MalformedMessageError(
            f"{what} must map resource names to integers, got {shown(value)}"
        )
    if len(items) > MAX_RESOURCES:
        raise MalformedMessageError(f"{what} names more than {MAX_RESOURCES} resources")
    out: dict[str, int] = {}
    for key, amount in items:
        key = _name(key, f"{what} resource")
        if key in out:
            raise MalformedMessageError(f"{what} names resource {key!r} twice")
        out[key] = _int(amount, f"{what}[{key}]")
    return tuple(sorted((k, v) for k, v in out.items() if v))


def _labels(value: object, what: str, check=_name) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise MalformedMessageError(f"{what} must be a list, got {shown(value)}")
    items = list(value)
    if len(items) > MAX_LABELS:
        raise MalformedMessageError(f"{what} has more than {MAX_LABELS} entries")
    return tuple(sorted({check(v, f"{what}[{i}]") for i, v in enumerate(items)}))


@dataclass(frozen=True)
class Offer:
    """An asset's kind and its owner's standing offer (see the module docstring).

    `capacity` and `unit_costs` map resource names to integers (given as a mapping, stored
    as sorted pairs); `capabilities` is a set of labels; `cid` the content id of the asset's
    content (a model's weights, a dataset), if it has one.
    """

    asset: str
    kind: AssetKind = "server"
    capacity: Any = ()
    capabilities: Any = ()
    cost: int = 0
    unit_costs: Any = ()
    cid: str | None = None

    def __post_init__(self) -> None:
        _name(self.asset, "offer.asset")
        if self.kind not in ASSET_KINDS:
            raise MalformedMessageError(
                f"offer.kind must be one of {', '.join(ASSET_KINDS)}, got {shown(self.kind)}"
            )
        object.__setattr__(self, "capacity", _amounts(self.capacity, "offer.capacity"))
        object.__setattr__(self, "unit_costs", _amounts(self.unit_costs, "offer.unit_costs"))
        object.__setattr__(
            self, "capabilities", frozenset(_labels(self.capabilities, "offer.capabilities"))
        )
        _int(self.cost, "offer.cost")
        if self.cid is not None:
            _cid(self.cid, "offer.cid")
        if self.kind != "server" and (self.capacity or self.unit_costs or self.capabilities):
            raise MalformedMessageError(
                f"a {self.kind} asset is bound by the requests that name it: it offers a cost "
                "per use, not capacity, unit costs or capabilities"
            )
        object.__setattr__(self, "_hash", hash(astuple_shallow(self)))

    def __hash__(self) -> int:  # immutable: hashed once (snapshots look offers up every round)
        return self._hash  # type: ignore[attr-defined, no-any-return]

    @property
    def is_server(self) -> bool:
        return self.kind == "server"

    def capacity_of(self, resource: str) -> int:
        return dict(self.capacity).get(resource, 0)

    def unit_cost_of(self, resource: str) -> int:
        return dict(self.unit_costs).get(resource, 0)

    def to_wire(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "kind": self.kind,
            "capacity": dict(self.capacity),
            "capabilities": sorted(self.capabilities),
            "cost": self.cost,
            "unit_costs": dict(self.unit_costs),
            "cid": self.cid,
        }

    @classmethod
    def from_wire(cls, data: object) -> Offer:
        return cls(**_fields(data, cls, "offer"))


@dataclass(frozen=True)
class RequestTerms:
    """A request's terms (see the module docstring); `max_price` is escrowed on posting."""

    request: str
    max_price: int
    demand: Any = ()
    replicas: int = 1
    capabilities: Any = ()
    assets: Any = ()
    inputs: Any = ()
    workload: str = ""
    deadline_ms: int = 0
    expires: int = NEVER
    # What the requester keeps from the node and every peer but the providers it assigns:
    # "inputs" (stored encrypted, the key sealed to each assigned provider when its task
    # opens), "output" (stored encrypted under a key only the requester and the assigned
    # providers hold). See mercat.node.sealing.
    sealed: Any = ()

    def __post_init__(self) -> None:
        _name(self.request, "request.request")
        _int(self.max_price, "request.max_price", 1)
        object.__setattr__(self, "demand", _amounts(self.demand, "request.demand"))
        _int(self.replicas, "request.replicas", 1)
        if self.replicas > MAX_BOUND:
            raise MalformedMessageError(f"request.replicas must be at most {MAX_BOUND}")
        object.__setattr__(
            self, "capabilities", frozenset(_labels(self.capabilities, "request.capabilities"))
        )
        if isinstance(self.assets, str) or not isinstance(self.assets, Iterable):
            raise MalformedMessageError(f"request.assets must be a list, got {shown(self.assets)}")
        assets = tuple(self.assets)
        for i, a in enumerate(assets):
            if not isinstance(a, str) or not (_NAME.fullmatch(a) or _CID.fullmatch(a)):
                raise MalformedMessageError(f"request.assets[{i}] must be an asset id or a CID")
        if len(set(assets)) != len(assets) or len(assets) > MAX_BOUND:
            raise MalformedMessageError(
                f"request.assets must be at most {MAX_BOUND} distinct ids or CIDs"
            )
        object.__setattr__(self, "assets", assets)
        object.__setattr__(self, "inputs", tuple(_labels(self.inputs, "request.inputs", _cid)))
        if not isinstance(self.workload, str) or not _TEXT.fullmatch(self.workload):
            raise MalformedMessageError("request.workload must be up to 256 printable characters")
        _int(self.deadline_ms, "request.deadline_ms")
        _int(self.expires, "request.expires")
        sealed = frozenset(_labels(self.sealed, "request.sealed"))
        if not sealed <= SEALABLE:
            raise MalformedMessageError(
                f"request.sealed takes {sorted(SEALABLE)}, got {shown(sorted(sealed))}"
            )
        object.__setattr__(self, "sealed", sealed)
        object.__setattr__(self, "_hash", hash(astuple_shallow(self)))

    def __hash__(self) -> int:  # immutable: hashed once (snapshots look terms up every round)
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def demand_of(self, resource: str) -> int:
        return dict(self.demand).get(resource, 0)

    def to_wire(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "max_price": self.max_price,
            "demand": dict(self.demand),
            "replicas": self.replicas,
            "capabilities": sorted(self.capabilities),
            "assets": list(self.assets),
            "inputs": list(self.inputs),
            "workload": self.workload,
            "deadline_ms": self.deadline_ms,
            "expires": self.expires,
            # only when set: a request in the clear signs (and hashes) as it always did
            **({"sealed": sorted(self.sealed)} if self.sealed else {}),
        }

    @classmethod
    def from_wire(cls, data: object) -> RequestTerms:
        return cls(**_fields(data, cls, "request"))


def astuple_shallow(record: object) -> tuple[Any, ...]:
    """The record's field values, in order (not recursing into them, as `astuple` would)."""
    return tuple(getattr(record, f.name) for f in fields(record))  # type: ignore[arg-type]


def _fields(data: object, cls: type, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedMessageError(f"{what} must be an object")
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING}
    if not required <= set(data) <= names:
        raise MalformedMessageError(
            f"{what} takes fields {sorted(names)} (required {sorted(required)}), "
            f"got {shown(sorted(map(str, data)))}"
        )
    return dict(data)


@dataclass(frozen=True, slots=True)
class TaskTerms:
    """One task the operator opens: `fraction` (PPB) of `request` served on `assets`.

    `assets` lists the servers first (in the order the clearing chose them), then the assets
    the request binds; `payouts[i]` is what the owner of `assets[i]` receives if the task
    succeeds and meets its SLA; `charge` is what the request pays then. The book holds
    max(charge, Σ payouts) when the task opens: a shortfall (a clearing whose prices pay a
    request's nodes more than the request pays, which budget balance allows across requests)
    is the *subsidy*, taken from the market-maker's account; an excess is the *margin*.
    """

    task: str
    request: str
    assets: tuple[str, ...]
    payouts: tuple[int, ...]
    charge: int
    fraction: int = PPB

    @property
    def paid_out(self) -> int:
        return sum(self.payouts)

    @property
    def subsidy(self) -> int:
        return max(0, self.paid_out - self.charge)

    @property
    def margin(self) -> int:
        """charge - Σ payouts: positive goes to the margin holder on success, negative is the
        subsidy the margin holder put in."""
        return self.charge - self.paid_out

    @property
    def held(self) -> int:
        return self.charge + self.subsidy

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "request": self.request,
            "assets": list(self.assets),
            "payouts": list(self.payouts),
            "charge": self.charge,
            "fraction": self.fraction,
        }

    @classmethod
    def from_wire(cls, data: object) -> TaskTerms:
        keys = {"task", "request", "assets", "payouts", "charge", "fraction"}
        if not isinstance(data, dict) or set(data) != keys:
            raise MalformedMessageError(f"a task has exactly the fields {sorted(keys)}")
        assets = data["assets"]
        payouts = data["payouts"]
        if not isinstance(assets, list) or not isinstance(payouts, list):
            raise MalformedMessageError("task.assets and task.payouts must be lists")
        if not 0 < len(assets) <= 2 * MAX_BOUND or len(payouts) != len(assets):
            raise MalformedMessageError(
                f"a task binds 1 to {2 * MAX_BOUND} assets with one payout each"
            )
        ids = tuple(_name(a, f"task.assets[{i}]") for i, a in enumerate(assets))
        if len(set(ids)) != len(ids):
            raise MalformedMessageError(f"task assets repeat: {list(ids)}")
        fraction = _int(data["fraction"], "task.fraction", 1)
        if fraction > PPB:
            raise MalformedMessageError(f"task.fraction must be at most {PPB} (the whole request)")
        return cls(
            task=_name(data["task"], "task.task"),
            request=_name(data["request"], "task.request"),
            assets=ids,
            payouts=tuple(_int(p, f"task.payouts[{i}]") for i, p in enumerate(payouts)),
            charge=_int(data["charge"], "task.charge"),
            fraction=fraction,
        )
