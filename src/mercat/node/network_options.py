"""Which mechanism options a client may set over the network, and within which caps.

`mercat clear -o KEY=VALUE` trusts its user with every option a mechanism's constructor
takes; a node must not: `threads=1000000` would start a million solver threads, `workers`
would fork as many processes, a `time_limit` of a day would hold a worker for a day. So the
node accepts only the options listed here, each checked against the operator's caps
(`NodeLimits`); a mechanism or an option not listed takes its defaults, and a client that
sets it is refused (422) with the list of what it may set. Where a mechanism's own default
exceeds a cap (an unlimited or 60 s time limit, a process per payment group), the node
passes the cap instead, so that a solve ends with its best answer before the node's hard
time limit stops it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from mercat import errors as e
from mercat.node.limits import NodeLimits

Rule = Callable[[str, Any], Any]

# A time-limited solve stops at this share of the node's limit, leaving the rest to build
# and send its answer.
SOLVE_SHARE_OF_TIME_LIMIT = 0.8


def _number(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Rule:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise e.InvalidParameterError(f"option {name} must be a number, got {value!r}")
        fine = math.isfinite(value)
        fine = fine and (value > low if open_low else value >= low)
        fine = fine and (value < high if open_high else value <= high)
        if not fine:
            lo, hi = "(" if open_low else "[", ")" if open_high else "]"
            raise e.InvalidParameterError(
                f"option {name} must lie in {lo}{low:g}, {high:g}{hi} on this node, got {value!r}"
            )
        return float(value)

    return check


def _count(low: int, high: int) -> Rule:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise e.InvalidParameterError(
                f"option {name} must be an integer in [{low}, {high}] on this node, got {value!r}"
            )
        return value

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise e.InvalidParameterError(f"option {name} must be true or false, got {value!r}")
    return value


def _choice(options: tuple[str, ...]) -> Rule:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise e.InvalidParameterError(
                f"option {name} must be one of {', '.join(options)}, got {value!r}"
            )
        return value

    return check


def _makers(cap: int) -> Rule:
    def check(name: str, value: Any) -> int | list[str]:
        if isinstance(value, list):
            if not 1 <= len(value) <= cap or not all(
                isinstance(v, str) and len(v) <= 64 for v in value
            ):
                raise e.InvalidParameterError(
                    f"option {name} must list 1 to {cap} strategy names, got {len(value)} "
                    "entries or a name that is not a short string"
                )
            return value
        return _count(1, cap)(name, value)

    return check


def rules(limits: NodeLimits) -> dict[str, dict[str, Rule]]:
    """The options a client may set, by mechanism name, with their checks."""
    from mercat.clearing.double_auction import DoubleAuction

    seconds = _number(0.0, limits.work_seconds, open_low=True)
    return {
        "optimal": {
            "time_limit": seconds,
            "rel_gap": _number(0.0, 1.0),
            "threads": _count(1, limits.solver_threads),
        },
        "double-auction": {"tie_break": _choice(DoubleAuction.TIE_BREAKS)},
        "vcg": {
            "time_limit": seconds,
            "target_gap": _number(0.0, 1.0, open_high=True),
            "groups": _count(1, limits.payment_groups),
            "require_exact": _flag,
            "workers": _count(0, limits.solver_processes),
        },
        "posted-price": {
            "makers": _makers(limits.market_makers),
            "tick": _number(1e-9, 1e9),
            "max_rounds": _count(1, limits.posted_price_rounds),
            "specialization": _flag,
            "penalty": _number(0.0, 1e12),
            "sigma": _number(0.0, 1e12),
        },
    }


def network_options(
    mechanism: str, options: Mapping[str, Any], limits: NodeLimits
) -> dict[str, Any]:
    """The keyword options to build `mechanism` with for a client that asked for `options`:
    each checked against the node's caps, and the node's caps where the mechanism's
    defaults exceed them. InvalidParameterError names an option the client may not set."""
    allowed = rules(limits).get(mechanism, {})
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise e.InvalidParameterError(
                f"mechanism {mechanism!r} takes no option {str(name)[:64]!r} over the network; "
                f"it takes: {known}"
            )
        checked[name] = allowed[name](name, value)
    soft_limit = limits.work_seconds * SOLVE_SHARE_OF_TIME_LIMIT
    if mechanism in ("optimal", "vcg"):
        checked.setdefault("time_limit", soft_limit)
    if mechanism == "vcg":
        # VCG's default is a process per payment group: the node's cap instead.
        checked.setdefault("workers", limits.solver_processes)
    if mechanism == "posted-price":
        checked.setdefault("max_rounds", limits.posted_price_rounds)
    return checked
