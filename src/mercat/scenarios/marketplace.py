"""A whole marketplace, round after round, on any book: the scenario behind `mercat market run`.

Providers put GPU servers on the market (staked, offered with capacity, a fixed cost per
round and a price per GPU), most of them reliable and some failure-prone (seed 000's
heterogeneous assets); one provider offers a model that some requests name by its CID.
Requesters post jobs every round with a bid (`max_price`), a GPU demand, replicas, an SLA
deadline and an expiry. Each round clears with the chosen mechanism, the tasks run (sampled
from the servers' failure and lateness rates), three oracles sign what they saw and the book
settles under its 2-of-3 quorum and its collective rule; failure-prone servers lose stake
and, under a rule that removes, leave the market.

On the SQL ledger every participant signs its own messages (the book's keyring holds their
keys), the operator signs the rounds, and `verify` re-checks every task against what owners
signed. `summary` says who earned what.

Where the collective rule weighs by stake (Coll-Rep, Coll-SR) and the mechanism is a priced
one, servers are admitted to each round with probability stake / S0
(`mercat.runtime.admission`).

Requesters are agents (`mercat.scenarios.agents`): the scenario draws what each job needs
and is worth, the requester's strategy bids for it (truthfully by default), and after every
round the strategy's `step` hook sees how its jobs fared. Providers are agents too
(`mercat.scenarios.provider_agents`): before every round a provider's strategy sets the ask
of each of its servers as a factor of the server's true cost (truthfully by default, which
posts nothing new), and after the round its `step` hook sees which servers were assigned and
what they were paid. `summary` reports each provider's profit: what it was paid less the
true cost of what its servers served.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mercat import validation as check
from mercat.clearing.base import Mechanism
from mercat.errors import InvalidParameterError
from mercat.identity import Keypair
from mercat.incentives.collective import mechanism as collective_mechanism
from mercat.runtime.admission import StakeAdmission
from mercat.runtime.attest import OracleQuorum
from mercat.runtime.collector import fewer_collections
from mercat.runtime.events import MemoryLog
from mercat.runtime.execute import SampledExecution
from mercat.runtime.round import RoundPlan, RoundReport, run_round
from mercat.runtime.terms import PPB, Offer, RequestTerms
from mercat.scenarios.agents import Job, JobOutcome, RequesterStrategy, Truthful
from mercat.scenarios.provider_agents import (
    ProviderStrategy,
    ServerCosts,
    ServerOutcome,
    checked_ask,
)

MODEL_CID = "bafkreimodelweightsformercatdemomarket"
"""The CID the demo's model asset is offered under (requests name the model by it)."""


@dataclass(frozen=True)
class MarketSetup:
    """How many of each, and the money, in tokens (the book's unit converts)."""

    providers: int = 4
    servers_per_provider: int = 2
    requesters: int = 6
    jobs_per_requester: int = 2  # posted every round
    failure_prone: float = 0.25  # share of servers that fail often
    stake: float = 10.0  # S0
    oracles: int = 3
    standard_auction: bool = False  # no fixed costs, no named model (VCG's standard auction)

    def __post_init__(self) -> None:
        for name in ("providers", "servers_per_provider", "requesters", "jobs_per_requester"):
            check.integer(name, getattr(self, name), minimum=1)
        check.probability("failure_prone", self.failure_prone)
        check.positive("stake", self.stake)
        check.integer("oracles", self.oracles, minimum=1)


@dataclass
class Marketplace:
    """A populated book and what it takes to run its rounds."""

    book: Any
    setup: MarketSetup
    plan: RoundPlan
    rng: np.random.Generator
    requesters: list[str]
    reliability: dict[str, float]  # server -> failure rate
    log: MemoryLog = field(default_factory=MemoryLog)
    reports: list[RoundReport] = field(default_factory=list)
    next_job: int = 0
    requester_of: dict[str, str] = field(default_factory=dict)  # job -> requester
    # each requester's bidding agent (truthful unless set); see mercat.scenarios.agents
    strategies: dict[str, RequesterStrategy] = field(default_factory=dict)
    # each provider's pricing agent (none: every server asks its true cost, as built)
    provider_strategies: dict[str, ProviderStrategy] = field(default_factory=dict)
    true_offers: dict[str, tuple[str, Offer]] = field(default_factory=dict)  # server ->
    # (provider, the offer at its true cost)
    ask_factor: dict[str, float] = field(default_factory=dict)  # server -> factor posted
    gone: set[str] = field(default_factory=set)  # servers the collective rule removed
    job_gpus: dict[str, int] = field(default_factory=dict)  # job -> GPUs per replica
    true_cost: dict[str, float] = field(default_factory=dict)  # provider -> tokens spent
    server_income: dict[str, float] = field(default_factory=dict)  # provider -> tokens its
    # servers were paid (its model's income apart)

    def strategy_of(self, requester: str) -> RequesterStrategy:
        if requester not in self.strategies:
            self.strategies[requester] = Truthful()
        return self.strategies[requester]

    def post_jobs(self, round_: int) -> None:
        """Every requester posts its jobs for this round (valid for three rounds)."""
        rng, unit = self.rng, self.book.unit
        divisible = self.plan.mechanism.divisible
        for requester in self.requesters:
            for _ in range(self.setup.jobs_per_requester):
                self.next_job += 1
                self.requester_of[f"job{self.next_job}"] = requester
                gpus = int(rng.integers(1, 4))
                self.job_gpus[f"job{self.next_job}"] = gpus
                named = (
                    [MODEL_CID]
                    if not self.setup.standard_auction and not divisible and rng.random() < 0.3
                    else []
                )
                replicas = (
                    1 if divisible or self.setup.standard_auction else int(rng.integers(1, 3))
                )
                value = float(rng.uniform(0.6, 1.6)) * gpus * replicas + 0.5 * len(named)
                job = Job(
                    requester, f"job{self.next_job}", round_, gpus, replicas, len(named), value
                )
                bid = _checked_bid(self.strategy_of(requester).bid(job), job)
                max_price = int(bid * unit)
                if max_price < 1:  # under one base unit: the requester sits this job out
                    continue
                self.book.post_request(
                    requester,
                    RequestTerms(
                        f"job{self.next_job}",
                        max_price=max_price,
                        demand={"gpu": gpus},
                        replicas=replicas,
                        assets=named,
                        workload="train-logreg",
                        deadline_ms=60_000,
                        expires=round_ + 2,
                    ),
                )

    def post_asks(self, round_: int) -> None:
        """Every provider with a strategy posts this round's ask for each of its servers
        still in the market: its true costs times the strategy's factor, in base units."""
        if not self.provider_strategies:
            return
        unit = self.book.unit
        for server, (provider, offer) in self.true_offers.items():
            strategy = self.provider_strategies.get(provider)
            if strategy is None or server in self.gone:
                continue
            costs = ServerCosts(
                provider,
                server,
                round_,
                offer.cost / unit,
                dict(offer.unit_costs).get("gpu", 0) / unit,
                dict(offer.capacity).get("gpu", 0),
            )
            factor = checked_ask(strategy.ask(costs), costs)
            self.ask_factor[server] = factor
            asked = replace(
                offer,
                cost=round(offer.cost * factor),
                unit_costs={r: round(c * factor) for r, c in offer.unit_costs},
            )
            self.book.post_offer(provider, asked)

    def run(self, rounds: int, start: int = 1) -> list[RoundReport]:
        with fewer_collections():  # rounds allocate many short-lived objects
            for round_ in range(start, start + rounds):
                self.post_asks(round_)
                self.post_jobs(round_)
                report = run_round(self.book, round_, self.plan, self.rng)
                self.reports.append(report)
                self.count_true_costs(report)
                self.tell_agents(report)
        return self.reports

    def count_true_costs(self, report: RoundReport) -> None:
        """What serving the round's tasks truly cost each provider (tokens): a used server's
        fixed cost once, and its cost per GPU for the share of each task it served."""
        unit = self.book.unit
        used: set[str] = set()
        for task in report.tasks:
            gpus = self.job_gpus.get(task.request, 0) * task.fraction / PPB
            for asset in task.assets:
                if asset not in self.true_offers:
                    continue  # the model: its cost per use is its true cost, paid as asked
                provider, offer = self.true_offers[asset]
                per_gpu = dict(offer.unit_costs).get("gpu", 0)
                self.true_cost[provider] = self.true_cost.get(provider, 0.0) + (
                    per_gpu * gpus / unit
                )
                if asset not in used:
                    used.add(asset)
                    self.true_cost[provider] += offer.cost / unit
        tasks = {t.task: t for t in report.tasks}
        for s in report.settlements:
            self.gone.update(s.removed)
            if not s.paid:
                continue
            terms = tasks[s.task]  # the pipeline settles every task in the round it opens
            for asset, amount in zip(terms.assets, terms.payouts, strict=True):
                if asset in self.true_offers:
                    provider = self.true_offers[asset][0]
                    self.server_income[provider] = self.server_income.get(provider, 0.0) + (
                        amount / unit
                    )

    def tell_agents(self, report: RoundReport) -> None:
        """The strategies' step hook: each requester's jobs that took part in the round."""
        served = {t.request for t in report.tasks}
        settled: dict[str, tuple[bool, int]] = {}
        for s in report.settlements:
            paid, charged = settled.get(s.request, (False, 0))
            settled[s.request] = (paid or s.paid, charged + s.charge)
        seen: dict[str, dict[str, JobOutcome]] = defaultdict(dict)
        for request in report.market.requests:
            paid, charged = settled.get(request.id, (False, 0))
            outcome = JobOutcome(request.id, request.id in served, paid, charged / self.book.unit)
            seen[self.requester_of[request.id]][request.id] = outcome
        for requester, strategy in self.strategies.items():
            strategy.step(report.round, seen.get(requester, {}))
        if not self.provider_strategies:
            return
        assigned = {a for t in report.tasks for a in t.assets}
        paid: dict[str, int] = defaultdict(int)
        tasks = {t.task: t for t in report.tasks}
        for s in report.settlements:
            if s.paid and s.task in tasks:
                for asset, amount in zip(tasks[s.task].assets, tasks[s.task].payouts, strict=True):
                    paid[asset] += amount
        per_provider: dict[str, dict[str, ServerOutcome]] = defaultdict(dict)
        for server, (provider, _) in self.true_offers.items():
            if server in self.gone and server not in assigned:
                continue
            per_provider[provider][server] = ServerOutcome(
                server,
                server in assigned,
                paid[server] / self.book.unit,
                self.ask_factor.get(server, 1.0),
            )
        for provider, strategy in self.provider_strategies.items():
            strategy.step(report.round, per_provider.get(provider, {}))


def build(
    book: Any,
    mechanism: Mechanism,
    setup: MarketSetup,
    rng: np.random.Generator,
    collective: Any = "coll-sr",
) -> Marketplace:
    """Accounts, servers with offers, the model, oracles; the round plan. `collective` is the
    book's collective rule, by name or as the rule object (`mercat.incentives.rules`)."""
    unit = book.unit
    stake = round(setup.stake * unit)
    book.deposit("operator", 10_000 * unit)
    book.fund_pool("operator", 1_000 * unit)
    providers = [f"provider{i + 1}" for i in range(setup.providers)]
    requesters = [f"requester{i + 1}" for i in range(setup.requesters)]
    for name in providers + requesters:
        book.open_account(name)
        book.deposit(name, 1_000 * unit)
    reliability, lateness = {}, {}
    true_offers: dict[str, tuple[str, Offer]] = {}
    for p, provider in enumerate(providers):
        for s in range(setup.servers_per_provider):
            server = f"{provider}-gpu{s + 1}"
            prone = rng.random() < setup.failure_prone
            # VCG's standard auction: providers do not bid; the double auction: asks per unit
            free = setup.standard_auction
            fixed = not free and not mechanism.divisible
            offer = Offer(
                server,
                capacity={"gpu": int(rng.integers(4, 9))},
                cost=int(rng.uniform(0.1, 0.5) * unit) if fixed else 0,
                unit_costs={"gpu": 0 if free else int(0.3 * unit + p * unit // 20)},
            )
            book.add_asset(provider, server, stake, offer)
            true_offers[server] = (provider, offer)
            reliability[server] = (
                float(rng.uniform(0.2, 0.4)) if prone else float(rng.uniform(0, 0.02))
            )
            lateness[server] = 0.1 if prone else 0.01
    if not setup.standard_auction:
        book.add_asset(
            providers[0],
            "model1",
            stake,
            Offer("model1", kind="model", cost=unit // 4, cid=MODEL_CID),
        )
        reliability["model1"] = 0.005
    oracles = [Keypair.generate() for _ in range(setup.oracles)]
    book.add_oracles(oracles)
    spec = collective_mechanism(collective) if isinstance(collective, str) else collective
    admission = (
        StakeAdmission(stake) if spec.stake_weighted and mechanism.name != "collective" else None
    )
    log = MemoryLog()
    plan = RoundPlan(
        mechanism,
        SampledExecution(reliability, sla_violations=lateness),
        OracleQuorum(oracles, ledger=getattr(book, "ledger_id", "")),
        admission=admission,
        log=log,
    )
    market = Marketplace(book, setup, plan, rng, requesters, reliability, log)
    market.true_offers = true_offers
    return market


def summary(market: Marketplace) -> dict[str, Any]:
    """Rounds, tasks, prices and who earned what (in tokens)."""
    book, unit = market.book, market.book.unit
    reports = market.reports
    name_of = getattr(book, "name_of", lambda owner: owner)
    income: dict[str, int] = defaultdict(int)
    spent: dict[str, int] = defaultdict(int)
    for report in reports:
        for s in report.settlements:
            for owner, amount in s.payouts.items():
                income[name_of(owner)] += amount
            spent[market.requester_of[s.request]] += s.charge
    removed = [a for r in reports for a in r.removed]
    tasks = sum(len(r.tasks) for r in reports)
    paid = sum(r.paid for r in reports)
    rounds = [
        {
            "round": r.round,
            "requests": r.requests,
            "servers": r.servers,
            "tasks": len(r.tasks),
            "paid": r.paid,
            "failed": r.failed,
            "welfare": round(r.welfare, 6),
            "charged": sum(s.charge for s in r.settlements) / unit,
            "margin": sum(s.margin for s in r.settlements) / unit,
            "removed": list(r.removed),
        }
        for r in reports
    ]
    return {
        "rounds": len(reports),
        "tasks": tasks,
        "paid": paid,
        "failed": tasks - paid,
        "task_failure_rate": (tasks - paid) / tasks if tasks else 0.0,
        "welfare": round(sum(r.welfare for r in reports), 6),
        "removed": removed,
        "earned": {k: v / unit for k, v in sorted(income.items())},
        "spent": {k: v / unit for k, v in sorted(spent.items())},
        # what each provider's servers were paid less the true cost of what they served
        "provider_profit": {
            p: market.server_income.get(p, 0.0) - market.true_cost.get(p, 0.0)
            for p in sorted({p for p, _ in market.true_offers.values()})
        },
        "pool": book.pool() / unit,
        "per_round": rounds,
    }


def stakes(book: Any, assets: Sequence[str]) -> dict[str, float]:
    return {a: book.stake_of(a) / book.unit for a in assets}


def _checked_bid(bid: object, job: Job) -> float:
    """A strategy's bid: a finite number of tokens >= 0."""
    if not isinstance(bid, int | float) or not 0 <= bid < float("inf"):
        raise InvalidParameterError(
            f"a requester strategy bid {bid!r} for {job.job}; a bid is a finite number >= 0"
        )
    return float(bid)
