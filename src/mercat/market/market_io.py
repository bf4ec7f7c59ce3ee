"""The JSON market format (docs/market-format.md): load, validate, dump.

Loading checks the document's shape here (JSON types, unknown or missing keys, each message
naming the JSON path, e.g. `requests[2].demand[0]`) and leaves the market's consistency
(duplicate ids, unknown requests in a conflict, negative numbers, vector lengths) to
`Market`'s own validation; every problem raises `InvalidMarketError` before anything is used.
A market is outside input: it is parsed within MAX_MARKET_BYTES and `mercat.untrusted`'s
depth limit, a key given twice in one object is refused (JSON parsers keep the last one
silently, which would drop, say, a first `requests` list), and values are quoted in messages
cut short (`untrusted.shown`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mercat.errors import InvalidMarketError
from mercat.market.model import CONFLICT_SCOPES, Conflict, Market, Node, Request
from mercat.untrusted import parse_json, read_text, shown

FORMAT = "mercat-market/1"

MAX_MARKET_BYTES = 128 << 20
"""The largest market text `loads_market` and `load_market` parse: about two million
requests written compactly (JSON parsing takes several times the text's size in memory)."""

_TOP_KEYS = {"format", "name", "divisible", "resources", "requests", "nodes", "conflicts"}
_TOP_KEYS |= {"exclusive_nodes"}
_REQUEST_KEYS = {"id", "value", "bid", "demand", "replicas", "capabilities"}
_NODE_KEYS = {"id", "cost", "unit_costs", "capacity", "capabilities", "weight"}
_CONFLICT_KEYS = {"requests", "scope"}


def _fail(path: str, message: str) -> InvalidMarketError:
    return InvalidMarketError(f"{path}: {message}" if path else message)


def _object(path: str, value: Any, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, f"expected an object, got {_kind(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        allowed_keys = ", ".join(sorted(allowed))
        raise _fail(path, f"unknown key {shown(unknown[0])}; allowed: {allowed_keys}")
    for key in required:
        if key not in value:
            raise _fail(path, f"missing required key {key!r}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "a list", dict: "an object"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _got(value: Any) -> str:
    """What was found instead, for a message: `a string '6'`, `null`."""
    return "null" if value is None else f"{_kind(value)} {shown(value)}"


def _number(path: str, value: Any, *, null_is_inf: bool = False) -> float:
    if value is None and null_is_inf:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "a number or null (unlimited)" if null_is_inf else "a number"
        raise _fail(path, f"expected {expected}, got {_got(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range (JSON allows 4300 digits)
        number = math.inf
    if not math.isfinite(number):
        raise _fail(path, f"expected a finite number, got {shown(value)}")
    return number


def _string(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"expected a non-empty string, got {_got(value)}")
    return value


def _list(path: str, value: Any) -> list:
    if not isinstance(value, list):
        raise _fail(path, f"expected a list, got {_kind(value)}")
    return value


def _vector(path: str, value: Any, size: int, default: float, *, null_is_inf: bool = False):
    if value is None and not null_is_inf:
        raise _fail(path, f"expected a list of {size} numbers, got null")
    if value is None:
        return tuple([math.inf] * size)
    items = _list(path, value)
    if len(items) != size:
        raise _fail(path, f"expected {size} entries (one per resource), got {len(items)}")
    return tuple(_number(f"{path}[{i}]", x, null_is_inf=null_is_inf) for i, x in enumerate(items))


def _labels(path: str, value: Any) -> frozenset[str]:
    return frozenset(_string(f"{path}[{i}]", c) for i, c in enumerate(_list(path, value)))


def market_from_dict(data: Any) -> Market:
    """A `Market` from the parsed JSON document."""
    doc = _object("", data, _TOP_KEYS, required=("requests", "nodes"))
    if "format" in doc and doc["format"] != FORMAT:
        raise _fail("format", f"expected {FORMAT!r}, got {shown(doc['format'])}")
    name = doc.get("name", "")
    if not isinstance(name, str):
        raise _fail("name", f"expected a string, got {_kind(name)}")
    divisible = doc.get("divisible", False)
    if not isinstance(divisible, bool):
        raise _fail("divisible", f"expected true or false, got {_got(divisible)}")
    resources = tuple(
        _string(f"resources[{i}]", r)
        for i, r in enumerate(_list("resources", doc.get("resources", [])))
    )
    k = len(resources)

    requests = []
    for i, raw in enumerate(_list("requests", doc["requests"])):
        path = f"requests[{i}]"
        item = _object(path, raw, _REQUEST_KEYS, required=("id",))
        rid = _string(f"{path}.id", item["id"])
        demand = (
            _vector(f"{path}.demand", item["demand"], k, 0.0)
            if "demand" in item
            else tuple([0.0] * k)
        )
        if ("value" in item) == ("bid" in item):
            raise _fail(path, "give exactly one of 'value' (total) and 'bid' (per unit)")
        if "value" in item:
            value = _number(f"{path}.value", item["value"])
        else:
            if k == 0:
                raise _fail(f"{path}.bid", "a per-unit bid needs a resource to count units in")
            value = _number(f"{path}.bid", item["bid"]) * demand[0]
        replicas = item.get("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise _fail(
                f"{path}.replicas",
                f"expected an integer, got {_got(replicas)}",
            )
        requests.append(
            Request(
                id=rid,
                value=value,
                demand=demand,
                replicas=replicas,
                capabilities=_labels(f"{path}.capabilities", item.get("capabilities", [])),
            )
        )

    nodes = []
    for j, raw in enumerate(_list("nodes", doc["nodes"])):
        path = f"nodes[{j}]"
        item = _object(path, raw, _NODE_KEYS, required=("id",))
        nodes.append(
            Node(
                id=_string(f"{path}.id", item["id"]),
                cost=_number(f"{path}.cost", item.get("cost", 0.0)),
                unit_costs=(
                    _vector(f"{path}.unit_costs", item["unit_costs"], k, 0.0)
                    if "unit_costs" in item
                    else tuple([0.0] * k)
                ),
                capacity=_vector(
                    f"{path}.capacity", item.get("capacity"), k, math.inf, null_is_inf=True
                ),
                capabilities=_labels(f"{path}.capabilities", item.get("capabilities", [])),
                weight=_number(f"{path}.weight", item.get("weight", 1.0)),
            )
        )

    conflicts = []
    for c, raw in enumerate(_list("conflicts", doc.get("conflicts", []))):
        path = f"conflicts[{c}]"
        item = _object(path, raw, _CONFLICT_KEYS, required=("requests",))
        pair = _list(f"{path}.requests", item["requests"])
        if len(pair) != 2:
            raise _fail(f"{path}.requests", f"expected 2 request ids, got {len(pair)}")
        scope = item.get("scope", "node")
        if scope not in CONFLICT_SCOPES:
            raise _fail(
                f"{path}.scope",
                f"expected one of {', '.join(CONFLICT_SCOPES)}, got {shown(scope)}",
            )
        conflicts.append(
            Conflict(
                _string(f"{path}.requests[0]", pair[0]),
                _string(f"{path}.requests[1]", pair[1]),
                scope,
            )
        )

    exclusive = tuple(
        tuple(
            _string(f"exclusive_nodes[{g}][{i}]", nid)
            for i, nid in enumerate(_list(f"exclusive_nodes[{g}]", group))
        )
        for g, group in enumerate(_list("exclusive_nodes", doc.get("exclusive_nodes", [])))
    )
    return Market(
        requests=tuple(requests),
        nodes=tuple(nodes),
        conflicts=tuple(conflicts),
        resources=resources,
        divisible=divisible,
        name=name,
        exclusive_nodes=exclusive,
    )


def loads_market(text: str | bytes) -> Market:
    """A `Market` from JSON text (at most MAX_MARKET_BYTES, nested at most
    `mercat.untrusted.MAX_DEPTH` levels, no key twice in one object)."""
    data = parse_json(text, what="the market", error=InvalidMarketError, max_bytes=MAX_MARKET_BYTES)
    return market_from_dict(data)


def load_market(path: str | Path) -> Market:
    """A `Market` from a JSON file (read no further than MAX_MARKET_BYTES)."""
    path = Path(path)
    text = read_text(
        path,
        what=f"market file {str(path)!r}",
        error=InvalidMarketError,
        max_bytes=MAX_MARKET_BYTES,
    )
    try:
        return loads_market(text)
    except InvalidMarketError as exc:
        raise InvalidMarketError(f"{path}: {exc}") from None


def _finite_or_null(x: float) -> float | None:
    return None if math.isinf(x) else x


def market_to_dict(market: Market) -> dict[str, Any]:
    """The JSON document of a market (values written as totals, so it round-trips exactly)."""
    doc: dict[str, Any] = {"format": FORMAT}
    if market.name:
        doc["name"] = market.name
    doc["divisible"] = market.divisible
    doc["resources"] = list(market.resources)
    doc["requests"] = []
    for t in market.requests:
        item: dict[str, Any] = {"id": t.id, "value": t.value}
        if market.resources:
            item["demand"] = list(t.demand)
        if t.replicas != 1:
            item["replicas"] = t.replicas
        if t.capabilities:
            item["capabilities"] = sorted(t.capabilities)
        doc["requests"].append(item)
    doc["nodes"] = []
    for n in market.nodes:
        item = {"id": n.id}
        if n.cost:
            item["cost"] = n.cost
        if any(n.unit_costs):
            item["unit_costs"] = list(n.unit_costs)
        if market.resources and not all(math.isinf(c) for c in n.capacity):
            item["capacity"] = [_finite_or_null(c) for c in n.capacity]
        if n.capabilities:
            item["capabilities"] = sorted(n.capabilities)
        if n.weight != 1.0:
            item["weight"] = n.weight
        doc["nodes"].append(item)
    if market.exclusive_nodes:
        doc["exclusive_nodes"] = [list(group) for group in market.exclusive_nodes]
    if market.conflicts:
        doc["conflicts"] = [
            {"requests": [c.first, c.second], "scope": c.scope} for c in market.conflicts
        ]
    return doc


def dumps_market(market: Market) -> str:
    """JSON text of a market: indented when small enough to read, compact otherwise."""
    readable = len(market.requests) + len(market.nodes) <= 2_000
    return json.dumps(market_to_dict(market), indent=2 if readable else None) + "\n"


def dump_market(market: Market, path: str | Path) -> None:
    """Write a market as JSON (the directory must exist)."""
    Path(path).write_text(dumps_market(market), encoding="utf-8")
