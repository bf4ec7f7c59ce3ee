"""The node's heavy work, as plain functions of the request's bytes: they run in the worker
processes of `mercat.node.workers`, so everything a hostile body can make expensive (parsing
16 MiB of JSON, building the market, solving it, the accountant's sums) happens under the
pool's time and memory limits, away from the node's event loop.

The fork server imports this module once (`workers.PRELOAD`), and with it the clearing stack.
"""

from __future__ import annotations

from typing import Any

from mercat import errors as e
from mercat.clearing import registry
from mercat.clearing.report import clearing_report, configure
from mercat.jsonable import jsonable
from mercat.market.market_io import market_from_dict
from mercat.node.limits import NodeLimits
from mercat.node.network_options import network_options
from mercat.untrusted import parse_json as parse_untrusted


def parse_json(body: bytes) -> Any:
    """The body as JSON; InvalidParameterError if it is not (or is nested too deeply)."""
    # the size is bounded by the node's body limit while it is received
    return parse_untrusted(body, what="the body", error=e.InvalidParameterError, max_bytes=None)


def clear_market(mechanism: str, body: bytes, seed: int, limits: NodeLimits) -> dict[str, Any]:
    """`POST /clearing/{mechanism}`: what `mercat clear --json` prints for the body's market,
    with the options a client may set (`network_options`)."""
    data = parse_json(body)
    if not isinstance(data, dict) or "market" not in data:
        raise e.InvalidMarketError('the body must be {"market": {...}, "options": {...}}')
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise e.InvalidParameterError("options must be an object of mechanism keywords")
    mechanism_class = registry.get(mechanism)
    checked = network_options(mechanism, options, limits)
    market = market_from_dict(data["market"])
    result = configure(mechanism_class, checked).clear(market, seed=seed)
    return jsonable(clearing_report(market, result, "request"))


PRIVACY_FIELDS = ("noise_multiplier", "epsilon", "delta", "rounds", "sampling_rate", "accountant")


def check_privacy(body: bytes) -> dict[str, Any]:
    """`POST /privacy/check`: seed 002's Alg. 2 on the body's run."""
    from mercat.privacy.accountant import GaussianRuns, check_differential_privacy

    data = parse_json(body)
    if not isinstance(data, dict):
        raise e.InvalidParameterError("the body must be a JSON object")
    unknown = sorted(str(k)[:64] for k in data if k not in PRIVACY_FIELDS)
    if unknown:
        raise e.InvalidParameterError(
            f"unknown field {unknown[0]!r}; the fields are {', '.join(PRIVACY_FIELDS)}"
        )
    try:
        runs = GaussianRuns(
            data["noise_multiplier"], data.get("rounds", 1), data.get("sampling_rate", 1.0)
        )
        epsilon, delta = data["epsilon"], data.get("delta", 1e-5)
    except KeyError as missing:
        raise e.InvalidParameterError(f"missing field {missing}") from None
    accountant = data.get("accountant", "auto")
    verdict = check_differential_privacy(runs, epsilon, delta, accountant)
    return {**jsonable(verdict), "compliant": verdict.compliant}


def audit_ledger(url: str) -> dict[str, Any]:
    """`GET /ledger/verify`: the ledger's audit (every balance recomputed from the journal,
    every signature checked), on a connection of the worker's own."""
    from mercat.ledger import Ledger

    with Ledger(url) as ledger:
        report = ledger.verify()
    return {**jsonable(report), "ok": report.ok}
