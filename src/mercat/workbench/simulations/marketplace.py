"""A whole marketplace through the round pipeline: the scenario of `mercat market run`.

Providers' servers (some failure-prone) and a model, requesters posting jobs every round
(bidding by their strategy: mercat.scenarios.agents), providers asking by theirs
(mercat.scenarios.provider_agents), any clearing mechanism (with its
options), oracles under a 2-of-3 quorum, the in-memory book settling under any collective
rule (a plug-in's too). Run 0 of a point is `mercat market run --seed SEED` on the in-memory
book; run r > 0 starts from a seed derived from (seed, r). Tables:

- `runs`: per run, tasks, paid and failed, the failure rate, welfare, charges, margin,
  removals, the reward pool at the end and the mean provider's profit (what its servers
  were paid less the true cost of what they served);
- `steps`: per run and round (every `step_every`-th and the last), the round's requests,
  eligible servers, tasks, paid, failed, welfare, charges, margin and removals.
"""

from __future__ import annotations

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
UNIT = 10**6


class MarketplaceSimulation(Simulation):
    """A marketplace round after round on the round pipeline (any mechanism and rule)."""

    name = "marketplace"
    title = "All seeds: a whole marketplace through the round pipeline (mercat market run)"
    step = "round"
    headline = ("task_failure_rate", "welfare_mean", "removed_mean")
    step_measures = ("tasks", "failed", "welfare")
    parameters = (
        _P("mechanism", "optimal", "str", "clearing mechanism: a registered name, a plug-in's "
           "or module:Class"),
        _P("options", {}, "table", "the mechanism's options"),
        _P("collective", "coll-sr", "str", "the book's collective rule (a plug-in's too)"),
        _P("rule_options", {}, "table", "a plug-in rule's options"),
        # the bounds of mercat market run: past them a run takes days or does not fit
        _P("rounds", 20, "int", "rounds per run", minimum=1, maximum=100_000),
        _P("providers", 4, "int", "providers", minimum=1, maximum=1000),
        _P("servers_per_provider", 2, "int", "servers each provider offers", minimum=1,
           maximum=1000),
        _P("requesters", 6, "int", "requesters", minimum=1, maximum=1000),
        _P("jobs_per_requester", 2, "int", "jobs each requester posts a round", minimum=1,
           maximum=1000),
        _P("failure_prone", 0.25, "float", "share of servers that fail often"),
        _P("stake", 10.0, "float", "S0, each server's stake"),
        _P("standard_auction", None, "bool?", "no fixed costs, no named model (auto: for vcg)"),
        _P("admission", None, "bool?", "stake-weighted admission for priced mechanisms under a "
           "rule that weighs by stake (auto: on where it applies)"),
        _P("requester_strategy", "truthful", "str", "how requesters bid: truthful, shading, "
           "adaptive, a plug-in's name or module:Class"),
        _P("strategy_options", {}, "table", "the requester strategy's options"),
        _P("provider_strategy", "truthful", "str", "how providers ask: truthful, markup, "
           "adaptive-markup, a plug-in's name or module:Class"),
        _P("provider_strategy_options", {}, "table", "the provider strategy's options"),
    )  # fmt: skip

    def build(self, params: Mapping[str, Any]) -> Any:
        from mercat.clearing import registry
        from mercat.clearing.report import configure
        from mercat.errors import InvalidParameterError
        from mercat.incentives.collective import mechanism as collective_rule
        from mercat.scenarios.agents import requester_strategy
        from mercat.scenarios.marketplace import MarketSetup
        from mercat.scenarios.provider_agents import provider_strategy

        clearing = configure(registry.resolve(params["mechanism"]), params["options"])
        rule = collective_rule(params["collective"], **params["rule_options"])
        rule.integer_rule(rule.rule(initial_stake=params["stake"], task_target=0.01), UNIT)
        requester_strategy(params["requester_strategy"], **params["strategy_options"])
        provider_strategy(params["provider_strategy"], **params["provider_strategy_options"])
        standard = params["standard_auction"]
        if standard is None:
            standard = clearing.name == "vcg" or getattr(clearing, "auction", None) == "vcg"
        setup = MarketSetup(
            providers=params["providers"],
            servers_per_provider=params["servers_per_provider"],
            requesters=params["requesters"],
            jobs_per_requester=params["jobs_per_requester"],
            failure_prone=params["failure_prone"],
            stake=params["stake"],
            standard_auction=standard,
        )
        if params["admission"] and not (rule.stake_weighted and clearing.name != "collective"):
            raise InvalidParameterError(
                "admission = true needs a priced mechanism and a rule that weighs by stake"
            )
        return params, setup

    def run(self, config: Any, runs: int, seed: int, steps: Steps) -> PointTables:
        from dataclasses import replace

        from mercat.clearing import registry
        from mercat.clearing.report import configure
        from mercat.incentives.collective import mechanism as collective_rule
        from mercat.runtime.memory import MemoryBook
        from mercat.scenarios.agents import requester_strategy
        from mercat.scenarios.marketplace import build, summary
        from mercat.scenarios.provider_agents import provider_strategy

        params, setup = config
        rows, per_round = [], []
        for r in range(runs):
            rule = collective_rule(params["collective"], **params["rule_options"])
            book_rule = rule.integer_rule(
                rule.rule(initial_stake=params["stake"], task_target=0.01), UNIT
            )
            book = MemoryBook(book_rule, unit=UNIT, quorum=2)
            clearing = configure(registry.resolve(params["mechanism"]), params["options"])
            rng = np.random.default_rng(run_seed(seed, r))
            market = build(book, clearing, setup, rng, rule)
            if params["admission"] is False:
                market.plan = replace(market.plan, admission=None)
            market.strategies = {
                requester: requester_strategy(
                    params["requester_strategy"], **params["strategy_options"]
                )
                for requester in market.requesters
            }
            if params["provider_strategy"] != "truthful":  # truthful: the offers as built
                market.provider_strategies = {
                    provider: provider_strategy(
                        params["provider_strategy"], **params["provider_strategy_options"]
                    )
                    for provider in sorted({p for p, _ in market.true_offers.values()})
                }
            market.run(params["rounds"])
            book.verify()
            result = summary(market)
            rows.append(
                {
                    "run": r,
                    "tasks": result["tasks"],
                    "paid": result["paid"],
                    "failed": result["failed"],
                    "task_failure_rate": result["task_failure_rate"],
                    "welfare": result["welfare"],
                    "charged": sum(x["charged"] for x in result["per_round"]),
                    "margin": sum(x["margin"] for x in result["per_round"]),
                    "removed": len(result["removed"]),
                    "pool": result["pool"],
                    "provider_profit": sum(result["provider_profit"].values())
                    / max(1, len(result["provider_profit"])),
                }
            )
            rounds = result["per_round"]
            for k in steps.kept(len(rounds)):
                per_round.append({"run": r, **rounds[k], "removed": len(rounds[k]["removed"])})
        table = pd.DataFrame(rows)
        tasks = int(table["tasks"].sum())
        summary_row = {
            "tasks": tasks,
            "task_failure_rate": float(table["failed"].sum() / tasks) if tasks else 0.0,
        }
        for measure in ("welfare", "charged", "margin", "removed", "provider_profit"):
            summary_row[f"{measure}_mean"], summary_row[f"{measure}_se"] = mean_and_se(
                table[measure]
            )
        tables = {"runs": table}
        if steps.keep:
            tables["steps"] = pd.DataFrame(per_round)
        return PointTables(summary_row, tables)
