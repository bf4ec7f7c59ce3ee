"""A clearing as plain data: a mechanism configured from named options, and its result with
welfare, margin, surplus, the checks and the certificate. `mercat clear --json` prints this and
the marketplace node's `POST /clearing/{mechanism}` returns it, so both say the same thing."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from mercat.clearing.base import Mechanism
from mercat.errors import InvalidParameterError, MercatError


def accepted_options(mechanism_class: type) -> list[str]:
    """The keyword options a mechanism's constructor takes."""
    return [
        name
        for name, p in inspect.signature(mechanism_class).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def configure(mechanism_class: type[Mechanism], options: Mapping[str, Any]) -> Mechanism:
    """The mechanism built with `options`; an unknown option or a value of the wrong kind is
    an `InvalidParameterError` naming it."""
    accepted = accepted_options(mechanism_class)
    for key in options:
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise InvalidParameterError(
                f"mechanism {mechanism_class.name!r} has no option {key!r}; its options: {known}"
            )
    try:
        return mechanism_class(**options)
    except MercatError:
        raise  # the mechanism's own message says what is wrong
    except (TypeError, ValueError) as exc:  # a value of the wrong kind for the constructor
        raise InvalidParameterError(
            f"mechanism {mechanism_class.name!r}: bad option value ({exc})"
        ) from exc


def clearing_report(
    market: Any, result: Any, label: str, *, timings: bool = False
) -> dict[str, Any]:
    """The clearing as plain data. It is a function of (market, mechanism, options, seed):
    the same inputs give the same report, byte for byte once printed, whatever the process
    (PYTHONHASHSEED included). Wall-clock times are not: diagnostics named `seconds` or
    `*_seconds` are left out unless `timings` is true (`mercat clear --timings`)."""
    from mercat.market.economics import summarize

    summary = summarize(market, result)
    diagnostics = {
        key: value
        for key, value in result.diagnostics.items()
        if timings or not (key == "seconds" or key.endswith("_seconds"))
    }
    return {
        "mechanism": result.mechanism,
        "market": market.name or label,
        "allocation": result.allocation.as_dict(),
        "payments": dict(result.payments),
        "rewards": dict(result.rewards),
        "welfare": summary.welfare,
        "margin": summary.margin,
        "surplus": summary.surplus,
        "checks": {
            "valid": summary.valid,
            "individually_rational": summary.individually_rational,
            "budget_balanced": summary.budget_balanced,
            "non_extractive": summary.non_extractive,
            "validity_reasons": list(summary.validity_reasons),
            "ir_violations": list(summary.ir_violations),
        },
        "certificate": {"bound": result.bound, "gap": result.gap, "proven": result.proven},
        "diagnostics": diagnostics,
    }
