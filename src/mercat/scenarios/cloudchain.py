"""Seed 002's 30-day simulation, run through mercat's round pipeline.

Seed 002 ("CloudChain: Decentralized Marketplace for AI Compute Resources") simulates cloud
and community providers for 30 days, work "distributed according to the smart contracts",
SLA compliance checked by oracles and penalties on violations. Here every hour is a round of
`mercat.runtime.round.run_round` on an in-memory book (`MemoryBook`), the code a live market
runs with a SQL ledger in its place (the parts and their defaults: `cloudchain_config`):

- **Providers' servers are offered assets.** Each server (8 GPUs of a cloud, or a whole
  community node) is an asset with its owner's offer: capacity in GPU-minutes per round
  (60 per GPU), its ask as a unit cost per GPU-minute, and a stake S0.
- **Jobs are posted requests.** A job's demand in GPU-minutes, its bid as `max_price`
  (value per GPU-hour × GPU-hours: the double auction bids max_price / demand per unit),
  the SLA deadline and the last round it may wait (`expires`); premium jobs carry the
  workload tag `premium`. The requester's account escrows the price when the job is
  posted (buying tokens first if it is short: a deposit, counted by the audit).
- **Each hour, two double auctions** (seed 003's `double-auction`: sorted water-filling with
  trade reduction; truthful, budget balanced, its margin to the collective pool): first the
  premium requests on the premium providers' servers (`RoundPlan.view`), then the other
  requests on every server's capacity left (`mercat.runtime.views.capacity_left`). A
  request may be split over servers: one task per server, with its fraction of the demand.
- **Execution** is sampled (`SampledExecution`): a task fails with its provider's failure
  probability and, if it ran, misses its SLA with its violation probability.
- **Attestation**: n oracles each report failed, late or on time, with an error rate; q of
  them must agree (`cloudchain_oracles.SimulatedOracles`; signed reports as an option).
- **Settlement** on the book, in integer base units (`mercat.runtime.money`): a task attested
  on time pays its server's owner; a failed, late or unattested one pays nothing and its
  charge goes back to the escrow. The collective rule of seed 000 (`mechanism`: free,
  coll-stake, coll-rep, coll-sr) moves the server's stake: the reward R from the pool on a
  paid task, the penalty P = λ·n into it otherwise (eq. 2's λ_i·R_i); a server whose stake
  falls to P is removed and never offered again. Under coll-rep and coll-sr a server takes
  part in each auction with probability stake / S0 (`StakeAdmission`).
- **Requesters retry.** When a request's tasks have settled, whatever part of the job was
  not served (a part the auction did not trade, a failed or late task) is posted again as a
  new request while the job's patience lasts; a request that waits past its last round
  expires and its escrow goes back. A job is completed when every GPU-minute of it was
  paid, expired when its patience ran out first.
- **Controls** (`drop`): jobs dropped before the market sees them, at random or from one
  group, to show what Jain's index tells apart.

`simulate` returns a `CloudChainResult` (`cloudchain_metrics`) with the book's audit: the
book verifies (every balance sums to zero, none negative), the supply is what was deposited,
and the balances by role add up to it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from mercat.clearing.double_auction import DoubleAuction
from mercat.errors import LedgerIntegrityError
from mercat.runtime.accounts import POOL, WORLD
from mercat.runtime.admission import StakeAdmission
from mercat.runtime.collector import fewer_collections
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, RoundReport, run_round
from mercat.runtime.snapshot import BookState
from mercat.runtime.terms import PPB, Offer, RequestTerms
from mercat.runtime.views import capacity_left
from mercat.scenarios.cloudchain_config import JOB_GPU_HOURS_CAP, UNIT, CloudChainConfig
from mercat.scenarios.cloudchain_metrics import CloudChainResult
from mercat.scenarios.cloudchain_oracles import SimulatedOracles

RESOURCE = "gpu_min"
"""The one resource: GPU-minutes (a GPU for an hourly round offers 60)."""
PREMIUM = "premium"
"""The workload tag of a job that needs a premium provider."""
_REQUESTER_FUNDS = 10**4 * UNIT  # a requester's first deposit; it tops up when short
_POOL_FUNDS = 10**6 * UNIT  # the operator's deposit into the collective reward pool


@dataclass
class _Job:
    requester: int
    left: int  # GPU-minutes not yet paid for
    value: float  # tokens per GPU-hour it is worth to its requester
    premium: bool
    last_round: int
    posts: int = 0


def _price(value: float, minutes: int) -> int:
    """A request's max_price: its value per GPU-hour times its GPU-hours, in base units."""
    return max(1, round(value * minutes / 60 * UNIT))


class _Market:
    """The book, the plans of the two hourly auctions, and the scenario's tallies."""

    def __init__(self, cfg: CloudChainConfig) -> None:
        self.cfg = cfg
        self.book = MemoryBook(cfg.integer_rule, unit=UNIT, keep_history=False)
        book = self.book
        book.deposit("operator", _POOL_FUNDS)
        book.fund_pool("operator", _POOL_FUNDS)
        stake = round(cfg.stake * UNIT)
        failure, late = {}, {}
        self.server_owner: dict[str, int] = {}
        self.server_gpus: dict[str, int] = {}
        premium_owners = set()
        for i, p in enumerate(cfg.providers):
            owner = f"p{i}"
            servers = p.server_gpus
            book.open_account(owner)
            book.deposit(owner, stake * len(servers))
            if cfg.premium(p):
                premium_owners.add(owner)
            for k, gpus in enumerate(servers):
                asset = f"{owner}.{k}"
                offer = Offer(
                    asset,
                    capacity={RESOURCE: 60 * gpus},
                    unit_costs={RESOURCE: max(0, round(p.cost / 60 * UNIT))},
                )
                book.add_asset(owner, asset, stake, offer)
                failure[asset], late[asset] = p.failure, p.violation
                self.server_owner[asset] = i
                self.server_gpus[asset] = gpus
        self.active_gpus = np.array([p.gpus for p in cfg.providers], dtype=float)
        self.requester_group = np.repeat(np.arange(len(cfg.groups)), cfg.group_sizes).astype(
            np.int64
        )
        for r in range(cfg.requesters):
            book.open_account(f"r{r}")
            book.deposit(f"r{r}", _REQUESTER_FUNDS)
        self.deposited = book.supply()  # and every top-up after

        self.oracles = SimulatedOracles(
            cfg.oracles, cfg.quorum, cfg.oracle_error, signed=cfg.signed_reports
        )
        executor = SampledExecution(failure, sla_violations=late)
        admission = StakeAdmission(stake) if cfg.stake_weighted else None
        auction = DoubleAuction()

        def premium_view(state: BookState) -> BookState:
            return BookState(
                state.round,
                state.unit,
                tuple(a for a in state.assets if a.owner in premium_owners),
                tuple(r for r in state.requests if r.terms.workload == PREMIUM),
            )

        def open_view(state: BookState) -> BookState:
            rest = tuple(r for r in state.requests if r.terms.workload != PREMIUM)
            narrowed = BookState(state.round, state.unit, state.assets, rest)
            return capacity_left(narrowed, book.usage_in(state.round))

        # open request -> (its job, its GPU-minutes, the requester)
        self.posted: dict[str, tuple[int, int, int]] = {}
        self.templates = {
            premium: RequestTerms(
                "template",
                max_price=1,
                demand={RESOURCE: 1},
                workload=PREMIUM if premium else "open",
                deadline_ms=cfg.deadline_ms,
            )
            for premium in (False, True)
        }
        self.plans = tuple(
            RoundPlan(auction, executor, self.oracles, admission, view=view, task_prefix=name)
            for name, view in (("premium", premium_view), ("open", open_view))
        )

    def post(self, job_id: int, job: _Job) -> None:
        """Post what is left of `job` as a new request (its first, or a repost)."""
        request = f"j{job_id}" if job.posts == 0 else f"j{job_id}.{job.posts}"
        job.posts += 1
        price = _price(job.value, job.left)
        terms = job_terms(self.templates[job.premium], request, price, job.left, job.last_round)
        account = f"r{job.requester}"
        short = price - self.book.available(account)
        if short > 0:  # the requester buys the tokens it needs (the operator's on-ramp)
            top_up = max(short, _REQUESTER_FUNDS)
            self.book.deposit(account, top_up)
            self.deposited += top_up
        self.book.post_request(account, terms)
        self.posted[request] = (job_id, job.left, job.requester)


def job_terms(
    template: RequestTerms, request: str, max_price: int, minutes: int, expires: int
) -> RequestTerms:
    """`template` (a validated job's terms) for another job: its id, price, GPU-minutes and
    last round. Built without validating again: a month posts some 10^5 requests, and
    validating each would cost a tenth of the run; the values are valid by construction (an
    id of the job's number, positive integers). A test holds it equal to `RequestTerms(...)`,
    hash included.

    The fields are set one by one, in the dataclass's order, never through `__dict__`: an
    instance whose `__dict__` was never asked for keeps its values without a dict object, and
    the book keeps every request's terms for the month, so a dict each would be 60,000 more
    objects for every full garbage collection to walk."""
    values = {name: getattr(template, name) for name in _TERMS_FIELDS}
    values.update(request=request, max_price=max_price, demand=((RESOURCE, minutes),),
                  expires=expires)  # fmt: skip
    terms = object.__new__(RequestTerms)
    for name, value in values.items():
        _set(terms, name, value)
    _set(terms, "_hash", hash(tuple(values.values())))
    return terms


_set = object.__setattr__  # RequestTerms is frozen
_TERMS_FIELDS = tuple(f.name for f in fields(RequestTerms))


@dataclass
class _Tallies:
    """What the run counts, in the book's integers (base units; GPU-minutes, times PPB for
    parts of a request), converted to tokens and GPU-hours once at the end."""

    earned: list[int]  # per provider, base units
    stake_change: list[int]  # per provider, base units
    allocated: list[int]  # per provider, GPU-minutes × PPB
    delivered: list[int]  # per provider, GPU-minutes × PPB
    paid: list[int]  # per requester, base units
    demanded: list[int]  # per requester, GPU-minutes
    served: list[int]  # per requester, GPU-minutes
    hourly: list[int]  # per round, GPU-minutes served

    @classmethod
    def zeros(cls, providers: int, requesters: int, rounds: int) -> _Tallies:
        return cls(*([0] * providers for _ in range(4)),
                   *([0] * requesters for _ in range(3)), [0] * rounds)  # fmt: skip


def simulate(
    cfg: CloudChainConfig,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> CloudChainResult:
    """Run the marketplace for `cfg.days` days of hourly rounds (module docstring); the same
    (config, seed) gives the same run, to the base unit."""
    with fewer_collections():
        return _simulate(cfg, seed, progress)


def _simulate(
    cfg: CloudChainConfig, seed: int, progress: Callable[[int], None] | None
) -> CloudChainResult:
    market = _Market(cfg)
    book = market.book
    rng = np.random.default_rng([seed, 1])
    m, n, rounds = len(cfg.providers), cfg.requesters, cfg.rounds
    tally = _Tallies.zeros(m, n, rounds)
    result = CloudChainResult(
        config=cfg,
        seed=seed,
        earned=np.zeros(m),
        stake_change=np.zeros(m),
        allocated=np.zeros(m),
        delivered=np.zeros(m),
        offered=np.zeros(m),
        requester_group=market.requester_group,
        demanded=np.zeros(n),
        served=np.zeros(n),
        paid=np.zeros(n),
        hourly_gpu_hours=np.zeros(rounds),
    )
    group_sizes = cfg.group_sizes
    first_of_group = np.concatenate(([0], np.cumsum(group_sizes)[:-1]))
    jobs: dict[int, _Job] = {}
    next_job = 0

    for round_ in range(1, rounds + 1):
        # 1. Arrivals: each requester's jobs this hour, posted as requests.
        for g, group in enumerate(cfg.groups):
            counts = rng.poisson(group.jobs_per_hour, group_sizes[g])
            k = int(counts.sum())
            if k == 0:
                continue
            owners = first_of_group[g] + np.repeat(np.arange(group_sizes[g]), counts)
            mu = math.log(group.mean_gpu_hours) - group.sigma**2 / 2
            hours = np.minimum(rng.lognormal(mu, group.sigma, k), JOB_GPU_HOURS_CAP)
            minutes = np.maximum(1, np.ceil(60 * hours))
            values = rng.uniform(group.value_low, group.value_high, k)
            premium = rng.random(k) < group.premium_share
            dropped = rng.random(k) < _drop_probability(cfg, group.name)
            result.jobs_submitted += k
            for owner, units, value, prem, drop in zip(
                owners.tolist(), minutes.astype(np.int64).tolist(), values.tolist(),
                premium.tolist(), dropped.tolist(), strict=True,
            ):  # fmt: skip
                tally.demanded[owner] += units
                if drop:
                    result.jobs_dropped_by_control += 1
                    continue
                job = _Job(owner, units, value, prem, round_ + group.patience - 1)
                jobs[next_job] = job
                market.post(next_job, job)
                next_job += 1

        # 2. The two auctions of the hour, each through every stage of the pipeline.
        result.offered += market.active_gpus
        reports = [run_round(book, round_, plan, rng) for plan in market.plans]

        # 3. What the round did to jobs, providers and requesters.
        for request in reports[0].expired:  # the book closed them (escrow refunded)
            job_id, _, _ = market.posted.pop(request)
            if jobs.pop(job_id).left > 0:
                result.jobs_expired += 1
        paid_fraction: dict[str, int] = defaultdict(int)
        for report in reports:
            _tally(market, report, result, tally, paid_fraction)
        for request in dict.fromkeys(t.request for report in reports for t in report.tasks):
            job_id, demand, _ = market.posted.pop(request)
            job = jobs[job_id]
            served = (demand * paid_fraction.get(request, 0) + PPB // 2) // PPB
            job.left -= served
            tally.served[job.requester] += served
            tally.hourly[round_ - 1] += served
            if job.left == 0:
                result.jobs_completed += 1
                del jobs[job_id]
            elif round_ < job.last_round:
                market.post(job_id, job)
            else:
                result.jobs_expired += 1
                del jobs[job_id]
        if progress is not None:
            progress(1)

    result.earned[:] = np.array(tally.earned) / UNIT
    result.stake_change[:] = np.array(tally.stake_change) / UNIT
    result.allocated[:] = np.array(tally.allocated, dtype=float) / (60 * PPB)
    result.delivered[:] = np.array(tally.delivered, dtype=float) / (60 * PPB)
    result.paid[:] = np.array(tally.paid) / UNIT
    result.demanded[:] = np.array(tally.demanded) / 60
    result.served[:] = np.array(tally.served) / 60
    result.hourly_gpu_hours[:] = np.array(tally.hourly) / 60
    result.jobs_waiting = len(jobs)
    result.no_quorum = market.oracles.no_quorum
    result.overturned = market.oracles.overturned
    result.audit = audit(market)
    return result


def _drop_probability(cfg: CloudChainConfig, group: str) -> float:
    if cfg.drop == "random" or (cfg.drop == "group" and cfg.drop_group == group):
        return cfg.drop_probability
    return 0.0


def _tally(
    market: _Market,
    report: RoundReport,
    result: CloudChainResult,
    tally: _Tallies,
    paid: dict[str, int],
) -> None:
    """Add one auction's tasks and settlements to the run's tallies. Outcomes and
    settlements come in the order of the tasks (`run_round`)."""
    deadline = market.cfg.deadline_ms
    server_owner, posted = market.server_owner, market.posted
    for task, outcome, settled in zip(
        report.tasks, report.outcomes, report.settlements, strict=True
    ):
        provider = server_owner[task.assets[0]]
        _, demand, requester = posted[task.request]
        units = demand * task.fraction  # GPU-minutes × PPB
        result.tasks += 1
        tally.allocated[provider] += units
        if outcome.success and outcome.latency_ms <= deadline:
            result.tasks_on_time += 1
        if settled.paid:
            result.tasks_paid += 1
            tally.delivered[provider] += units
            tally.earned[provider] += sum(settled.payouts.values())
            tally.paid[requester] += settled.charge
            paid[task.request] += task.fraction
        for effect in settled.effects:
            owner = server_owner[effect.asset]
            tally.stake_change[owner] += effect.stake_after - effect.stake_before
            if effect.removed:
                name = market.cfg.providers[owner].name
                result.removed.append((effect.asset, name, report.round))
                market.active_gpus[owner] -= market.server_gpus[effect.asset]


def audit(market: _Market) -> dict[str, object]:
    """The book's own check, and its balances by role: they add up to the supply deposited."""
    book = market.book
    book.verify()  # raises LedgerIntegrityError unless every book sums to zero, none negative
    roles: dict[str, int] = defaultdict(int)
    for name, amount in book.books().items():
        if name == WORLD:
            continue
        kind, _, who = name.partition(":")
        if name == POOL:
            roles["pool"] += amount
        elif kind == "stake":
            roles["providers_stake"] += amount
        elif kind == "escrow":
            roles["requesters_escrow"] += amount
        elif kind == "hold":
            roles["tasks_held"] += amount
        elif who == book.operator:
            roles["operator"] += amount
        elif who.startswith("p"):
            roles["providers_available"] += amount
        else:
            roles["requesters_available"] += amount
    supply = book.supply()
    if supply != market.deposited or sum(roles.values()) != supply:
        raise LedgerIntegrityError(
            f"supply {supply} (deposited {market.deposited}), by role {sum(roles.values())}"
        )
    return {
        "verified": True,
        "supply_deposited": market.deposited / UNIT,
        "supply_now": supply / UNIT,
        "by_role": {k: v / UNIT for k, v in sorted(roles.items())},
    }
