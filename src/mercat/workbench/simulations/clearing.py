"""Clearing experiments: a family of generated markets cleared by a mechanism (seeds 001, 003).

Each run draws one market of the family from the point's seed and clears it with the
mechanism (any registered mechanism, a plug-in's name or `module:Class`, with its
`options`). The families are `mercat generate`'s: `random` (every constraint kind of seed
001's market model), `double-auction` and `standard-auction` (seed 003's set-ups) and the
`running-example` of seed 001. Variants that differ in the mechanism clear the same markets
(the market's draw depends on the seed and the run only), so an A/B comparison is paired.

- `runs`: per market, its size, what the clearing served, welfare, margin, surplus, the
  checks (valid, individually rational, budget balanced), the certificate (bound, gap,
  proven) and, with `optimum = true`, the optimal welfare and the efficiency W/W*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mercat.workbench.simulation import (
    Parameter,
    PointTables,
    Simulation,
    Steps,
    mean_and_se,
    run_seed,
)

_P = Parameter
MARKETS = ("random", "double-auction", "standard-auction", "running-example")
MAX_SIDE = 10_000
"""Requests, and nodes, of a generated market: a random market of 10,000 requests takes
about a minute to draw (its conflicts are pairs), and checking a point draws one."""


class ClearingSimulation(Simulation):
    """Generated markets cleared by a mechanism: welfare, margin, surplus, checks."""

    name = "clearing"
    title = "Seeds 001 and 003: a family of generated markets cleared by a mechanism"
    headline = ("welfare_mean", "margin_mean", "surplus_mean")
    parameters = (
        _P("mechanism", "optimal", "str", "clearing mechanism: a registered name, a plug-in's "
           "or module:Class"),
        _P("options", {}, "table", "the mechanism's options (as mercat clear -o KEY=VALUE)"),
        _P("market", "random", "str", "market family", choices=MARKETS),
        _P("requests", 20, "int", "requests (users) per market", minimum=0, maximum=MAX_SIDE),
        _P("nodes", 8, "int", "nodes (providers) per market", minimum=1, maximum=MAX_SIDE),
        _P("divisible", False, "bool", "random markets: divisible requests"),
        _P("max_replicas", 2, "int", "random markets: most replicas a request asks", minimum=1,
           maximum=MAX_SIDE),
        _P("optimum", False, "bool", "also solve the optimal welfare (efficiency W/W*)"),
    )  # fmt: skip

    def build(self, params: Mapping[str, Any]) -> Any:
        from mercat.clearing import registry
        from mercat.clearing.report import configure

        mechanism = configure(registry.resolve(params["mechanism"]), params["options"])
        market = self.market(dict(params), np.random.default_rng([params["seed"], 0]))
        mechanism.check_market(market)  # a family this mechanism cannot clear fails now
        return params, mechanism

    @staticmethod
    def market(params: dict[str, Any], rng: np.random.Generator) -> Any:
        from mercat.market import generators

        kind = params["market"]
        if kind == "random":
            return generators.random_market(
                rng,
                params["requests"],
                params["nodes"],
                max_replicas=params["max_replicas"],
                divisible=params["divisible"],
            )
        if kind == "double-auction":
            return generators.double_auction_market(rng, params["requests"], params["nodes"])
        if kind == "standard-auction":
            return generators.standard_auction_market(rng, params["requests"], params["nodes"])
        return generators.running_example()

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        from mercat.clearing.optimal import OptimalMechanism
        from mercat.market.economics import summarize, welfare

        params, mechanism = config
        rows = []
        for r in range(runs):
            market = self.market(params, np.random.default_rng([seed, r]))
            clearing = mechanism.clear(market, seed=run_seed(seed, r))
            summary = summarize(market, clearing)
            row = {
                "run": r,
                "requests": len(market.requests),
                "nodes": len(market.nodes),
                "served": summary.served_requests,
                "used_nodes": summary.used_nodes,
                "welfare": summary.welfare,
                "margin": summary.margin,
                "surplus": summary.surplus,
                "valid": summary.valid,
                "individually_rational": summary.individually_rational,
                "budget_balanced": summary.budget_balanced,
                "proven": bool(clearing.proven),
                "bound": math.nan if clearing.bound is None else float(clearing.bound),
                "gap": math.nan if clearing.gap is None else float(clearing.gap),
            }
            if params["optimum"]:
                best = welfare(market, OptimalMechanism().clear(market).allocation)
                row["optimal_welfare"] = best
                row["efficiency"] = summary.welfare / best if best > 0 else math.nan
            rows.append(row)
        table = pd.DataFrame(rows)
        summary_row: dict[str, Any] = {}
        for measure in ("welfare", "margin", "surplus", "served"):
            summary_row[f"{measure}_mean"], summary_row[f"{measure}_se"] = mean_and_se(
                table[measure]
            )
        for check in ("valid", "individually_rational", "budget_balanced", "proven"):
            summary_row[f"{check}_share"] = float(table[check].mean())
        if params["optimum"]:
            summary_row["efficiency_mean"] = float(table["efficiency"].mean())
        return PointTables(summary_row, {"runs": table})
