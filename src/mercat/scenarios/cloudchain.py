"""Seed 002's 30-day simulation: cloud and community providers in one marketplace.

The seed simulates "major cloud providers (AWS, Google Cloud, Azure, Hetzner, Lambda Labs)
and community-based nodes" (28 providers in its Fig. 4) for 30 days, work "distributed
according to the smart contracts", SLA compliance attested by oracles and penalties on
violations, and reports token distribution (Fig. 4), throughput against the number of
requesters (Fig. 3), Jain's fairness index over requesters (Fig. 5, at least 0.89), SLA
compliance and utilization. It gives no parameters. mercat's model, with every assumption a
field of `CloudChainConfig`:

- **Time**: hourly rounds (30 × 24 = 720).
- **Providers**: 5 clouds (large, reliable, priced by their public GPU-hour rates relative
  to each other) and 23 community nodes (small, cheaper, less reliable). A provider offers
  its capacity in GPU-hours each round at its unit cost (truthful asks: trade reduction
  makes that dominant), one ask per GPU-hour.
- **Requesters**: each submits jobs as a Poisson process. A job needs `units` GPU-hours
  (lognormal), is worth `value` per unit to its requester, and waits at most `patience`
  rounds before it is dropped. A share of jobs (training) needs a provider of at least
  `premium_reliability`; the rest runs anywhere.
- **Clearing**: every round, two double auctions of seed 003 (trade reduction, truthful and
  budget balanced): first premium jobs on premium providers, then all other waiting work on
  the capacity left. Units traded are split between requesters and providers by the
  auction's plan. Trade reduction leaves out the marginal buyer and the marginal seller, so
  both sides trade in GPU-hours: a job bids for each unit it needs (at its value), a
  provider asks for each unit it has. With whole jobs and whole providers (or machines) as
  bidders, a thin market loses a whole job or a whole cloud every round: at 10 requesters,
  12 % of jobs were dropped while 90 % of capacity sat idle.
- **Execution and attestation**: each piece of work fails with its provider's failure
  probability and, if it ran, misses its SLA with the provider's violation probability. `n`
  oracles each report the outcome (failed, late, on time): the true one with probability
  `1 - oracle_error`, else one of the two others. The outcome q of them agree on is the
  verdict (2q > n, the rule of `mercat.oracle.quorum.tally`; no quorum: unsettled).
- **Settlement** (eq. 2): on an attested run (late or on time) the requester pays the buyer
  price per unit and the provider earns the seller price per unit in tokens; the difference
  is the auction's margin. On an attested failure or without a quorum the escrow goes back
  and the units return to the job's queue. An attested SLA violation costs the provider λ
  for each of the n oracle reports recorded for it (eq. 2's λ_i R_i, read as in
  `mercat.oracle.economics`), paid into a penalty pool. Every token is accounted for:
  paid = earned + margin.

Reported: tokens per provider, throughput (GPU-hours and jobs completed per hour), Jain's
index over requesters' served share of demand, SLA compliance and utilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mercat import validation as check
from mercat.clearing.double_auction import trade_reduction
from mercat.errors import InvalidParameterError

CLOUDS = ("AWS", "Google Cloud", "Azure", "Hetzner", "Lambda Labs")
MAX_ARRIVALS_PER_ROUND = 100_000  # the waiting jobs live in memory, bids per GPU-hour
MAX_ROUNDS = 10 * 365 * 24


@dataclass(frozen=True)
class Provider:
    name: str
    capacity: float  # GPU-hours per round
    cost: float  # tokens per GPU-hour (its ask)
    failure: float  # probability that a piece of work fails
    violation: float  # probability that work that ran misses its SLA
    cloud: bool

    @property
    def reliability(self) -> float:
        return (1 - self.failure) * (1 - self.violation)


def default_providers(community: int = 23, seed: int = 0) -> tuple[Provider, ...]:
    """The five clouds (capacities and relative prices in the spirit of their GPU offers;
    the seed gives none) and `community` nodes drawn from one seeded generator."""
    clouds = (
        Provider("AWS", 320.0, 3.0, 0.002, 0.003, True),
        Provider("Google Cloud", 280.0, 2.9, 0.002, 0.004, True),
        Provider("Azure", 280.0, 3.1, 0.003, 0.004, True),
        Provider("Hetzner", 120.0, 1.9, 0.006, 0.008, True),
        Provider("Lambda Labs", 200.0, 2.2, 0.004, 0.005, True),
    )
    rng = np.random.default_rng([seed, 2])
    nodes = tuple(
        Provider(
            f"Community Node {i + 1}",
            float(rng.integers(4, 33)),
            float(np.round(rng.uniform(1.0, 2.4), 2)),
            float(np.round(rng.uniform(0.01, 0.05), 3)),
            float(np.round(rng.uniform(0.01, 0.05), 3)),
            False,
        )
        for i in range(community)
    )
    return clouds + nodes


@dataclass(frozen=True)
class CloudChainConfig:
    requesters: int = 100
    days: int = 30
    rounds_per_day: int = 24
    jobs_per_requester_hour: float = 0.5
    mean_units: float = 8.0  # GPU-hours per job (lognormal mean)
    units_sigma: float = 0.8
    value_low: float = 2.0  # tokens per GPU-hour a requester is willing to pay
    value_high: float = 5.0
    patience: int = 6  # rounds a job waits before it is dropped
    premium_share: float = 0.4  # training jobs: need a premium provider
    premium_reliability: float = 0.99
    oracles: int = 5
    quorum: int = 3
    oracle_error: float = 0.02
    penalty_factor: float = 0.5  # λ: tokens per oracle report on an SLA violation
    providers: tuple[Provider, ...] = field(default_factory=default_providers)

    def __post_init__(self) -> None:
        for name in ("requesters", "days", "rounds_per_day", "patience", "oracles", "quorum"):
            check.integer(name, getattr(self, name), 1)
        if not self.oracles < 2 * self.quorum <= 2 * self.oracles:
            raise InvalidParameterError(
                f"quorum must be a majority of the {self.oracles} oracles (2q > n) and at most "
                f"n, so that two verdicts cannot both reach it; got {self.quorum}"
            )
        for name in ("jobs_per_requester_hour", "mean_units", "units_sigma", "value_low"):
            check.positive(name, getattr(self, name))
        if self.requesters * self.jobs_per_requester_hour > MAX_ARRIVALS_PER_ROUND:
            raise InvalidParameterError(
                f"{self.requesters} requesters × {self.jobs_per_requester_hour} jobs an hour "
                f"exceeds {MAX_ARRIVALS_PER_ROUND:,} expected arrivals a round"
            )
        if self.rounds > MAX_ROUNDS or self.mean_units > 1e4:
            raise InvalidParameterError(
                f"at most {MAX_ROUNDS} rounds and 10^4 GPU-hours per job, got {self.rounds} "
                f"rounds and {self.mean_units}"
            )
        if check.real("value_high", self.value_high) < self.value_low:
            raise InvalidParameterError("value_high must be >= value_low")
        for name in ("premium_share", "premium_reliability", "oracle_error"):
            check.probability(name, getattr(self, name))
        check.non_negative("penalty_factor", self.penalty_factor)
        if not self.providers:
            raise InvalidParameterError("the market needs at least one provider")
        if len({p.name for p in self.providers}) != len(self.providers):
            raise InvalidParameterError("provider names must be unique")
        for p in self.providers:
            if check.positive(f"{p.name!r} capacity", p.capacity) > 1e5:
                raise InvalidParameterError(f"provider {p.name!r}: capacity above 1e5 GPU-hours")
            check.non_negative(f"{p.name!r} cost", p.cost)
            for name in ("failure", "violation"):
                if check.probability(f"{p.name!r} {name}", getattr(p, name)) == 1:
                    raise InvalidParameterError(
                        f"provider {p.name!r}: {name} probability 1 leaves nothing to sell"
                    )

    @property
    def rounds(self) -> int:
        return self.days * self.rounds_per_day


@dataclass(frozen=True)
class CloudChainResult:
    config: CloudChainConfig
    tokens: np.ndarray  # per provider: earned minus SLA penalties (eq. 2)
    penalties: np.ndarray  # per provider, paid into the penalty pool
    market_margin: float  # (buyer price - seller price) × units: trade reduction's surplus
    delivered: np.ndarray  # per provider: GPU-hours attested successful
    demanded: np.ndarray  # per requester: GPU-hours submitted
    served: np.ndarray  # per requester: GPU-hours completed
    paid: np.ndarray  # per requester: tokens paid
    jobs_submitted: int
    jobs_completed: int
    jobs_dropped: int
    pieces: int  # pieces of work executed
    pieces_sla_met: int  # attested as run within SLA
    pieces_unsettled: int  # no q oracles agreed: refunded, work back in the queue
    hourly_units: np.ndarray  # GPU-hours completed per round

    @property
    def throughput_units_per_hour(self) -> float:
        return float(self.hourly_units.mean())

    @property
    def jobs_per_hour(self) -> float:
        return self.jobs_completed / self.config.rounds

    @property
    def sla_compliance(self) -> float:
        return self.pieces_sla_met / self.pieces if self.pieces else math.nan

    @property
    def utilization(self) -> np.ndarray:
        capacity = np.array([p.capacity for p in self.config.providers]) * self.config.rounds
        return self.delivered / capacity

    @property
    def jain_fairness(self) -> float:
        return jain(self.served / np.maximum(self.demanded, 1e-12), self.demanded > 0)

    @property
    def cloud_token_share(self) -> float:
        clouds = np.array([p.cloud for p in self.config.providers])
        total = self.tokens.sum()
        return float(self.tokens[clouds].sum() / total) if total > 0 else math.nan


def jain(x: np.ndarray, include: np.ndarray | None = None) -> float:
    """Jain's fairness index (Σx)² / (n Σx²): 1 when all are equal, 1/n when one has all."""
    values = np.asarray(x, dtype=float)
    if include is not None:
        values = values[include]
    if values.size == 0 or not np.any(values):
        return math.nan
    return float(values.sum() ** 2 / (values.size * np.square(values).sum()))


FAILED, LATE, ON_TIME, NO_QUORUM = 0, 1, 2, -1
OUTCOMES = 3  # what an oracle can report: failed, ran but missed the SLA, ran within it


def oracle_votes(truth: np.ndarray, cfg: CloudChainConfig, rng: np.random.Generator) -> np.ndarray:
    """Each oracle's report on each piece: the true outcome with probability 1 - error, else
    one of the two others, uniformly. Shape (pieces, oracles)."""
    wrong = rng.random((truth.size, cfg.oracles)) < cfg.oracle_error
    shift = rng.integers(1, OUTCOMES, size=(truth.size, cfg.oracles))
    return np.where(wrong, (truth[:, None] + shift) % OUTCOMES, truth[:, None])


def verdicts(votes: np.ndarray, quorum: int) -> np.ndarray:
    """The outcome at least `quorum` oracles agree on, per piece, or NO_QUORUM: the rule of
    `mercat.oracle.quorum.tally` (with 2q > n no two outcomes can both reach q)."""
    counts = np.stack([(votes == k).sum(axis=1) for k in range(OUTCOMES)], axis=1)
    best = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) >= quorum, best, NO_QUORUM)


def unit_lots(amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`amounts` cut into lots of one unit (the last of each possibly less): (whose lot it is,
    its size). Trade reduction leaves out the marginal buyer and seller, so both sides trade
    in unit lots and the auction loses at most a unit on each side."""
    per = np.ceil(np.asarray(amounts) - 1e-9).astype(np.int64)
    owner = np.repeat(np.arange(per.size), per)
    within = np.arange(owner.size) - np.repeat(np.cumsum(per) - per, per)
    return owner, np.minimum(1.0, amounts[owner] - within)


def simulate(cfg: CloudChainConfig, seed: int = 0) -> CloudChainResult:
    """Run the marketplace for `cfg.days` days; the same (config, seed) gives the same run."""
    rng = np.random.default_rng([seed, 1])
    providers = cfg.providers
    m = len(providers)
    capacity = np.array([p.capacity for p in providers])
    cost = np.array([p.cost for p in providers])
    ask_of, ask_capacity = unit_lots(capacity)  # asks: one GPU-hour each, of provider ask_of[k]
    ask_cost = cost[ask_of]
    failure = np.array([p.failure for p in providers])
    violation = np.array([p.violation for p in providers])
    premium_provider = np.array([p.reliability >= cfg.premium_reliability for p in providers])
    lognormal_mu = math.log(cfg.mean_units) - cfg.units_sigma**2 / 2

    # Waiting jobs, as parallel arrays.
    owner = np.empty(0, dtype=np.int64)
    remaining = np.empty(0)
    value = np.empty(0)
    premium = np.empty(0, dtype=bool)
    age = np.empty(0, dtype=np.int64)

    earned = np.zeros(m)
    penalties = np.zeros(m)
    margin = 0.0
    delivered = np.zeros(m)
    demanded = np.zeros(cfg.requesters)
    served = np.zeros(cfg.requesters)
    paid = np.zeros(cfg.requesters)
    hourly = np.zeros(cfg.rounds)
    submitted = completed = dropped = pieces = pieces_ok = unsettled = 0

    for t in range(cfg.rounds):
        # Arrivals.
        counts = rng.poisson(cfg.jobs_per_requester_hour, cfg.requesters)
        new = int(counts.sum())
        if new:
            new_owner = np.repeat(np.arange(cfg.requesters), counts)
            new_units = rng.lognormal(lognormal_mu, cfg.units_sigma, new)
            np.add.at(demanded, new_owner, new_units)
            owner = np.concatenate([owner, new_owner])
            remaining = np.concatenate([remaining, new_units])
            value = np.concatenate([value, rng.uniform(cfg.value_low, cfg.value_high, new)])
            premium = np.concatenate([premium, rng.random(new) < cfg.premium_share])
            age = np.concatenate([age, np.zeros(new, dtype=np.int64)])
            submitted += new

        # Clearing: the premium market first, then everything waiting on what is left.
        left = ask_capacity.copy()
        for tier in ("premium", "open"):
            if tier == "premium":
                jobs = np.flatnonzero(premium & (remaining > 1e-9))
                offered = np.where(premium_provider[ask_of], left, 0.0)
            else:
                jobs = np.flatnonzero(~premium & (remaining > 1e-9))
                offered = left
            if jobs.size == 0 or not offered.any():
                continue
            lot_of, bid_units = unit_lots(remaining[jobs])  # bids: a GPU-hour each, at its value
            bid_job = jobs[lot_of]
            outcome = trade_reduction(value[bid_job], bid_units, ask_cost, offered)
            if outcome.traded_quantity <= 0:
                continue
            job = bid_job[outcome.plan_users]
            ask = outcome.plan_providers
            who = ask_of[ask]
            units = outcome.plan_amounts
            used = np.bincount(ask, weights=units, minlength=ask_of.size)
            left = np.maximum(left - used, 0.0)  # float rounding must not leave -1e-15

            # Execution and attestation, per piece of work.
            ran = rng.random(units.size) >= failure[who]
            on_time = ran & (rng.random(units.size) >= violation[who])
            truth = np.where(on_time, ON_TIME, np.where(ran, LATE, FAILED))
            verdict = verdicts(oracle_votes(truth, cfg, rng), cfg.quorum)
            pieces += units.size
            pieces_ok += int((verdict == ON_TIME).sum())
            unsettled += int((verdict == NO_QUORUM).sum())

            # Settlement (eq. 2). Paid on an attested run (late or on time); λ for each of
            # the n oracle reports recorded on an attested violation. A failure or a piece
            # without a quorum is refunded and its units go back to the job's queue.
            done = units * ((verdict == ON_TIME) | (verdict == LATE))
            np.add.at(earned, who, done * outcome.seller_price)
            np.add.at(delivered, who, done)
            np.add.at(paid, owner[job], done * outcome.buyer_price)
            np.add.at(served, owner[job], done)
            margin += float(done.sum()) * (outcome.buyer_price - outcome.seller_price)
            penalty = cfg.penalty_factor * cfg.oracles * (verdict == LATE)
            np.add.at(penalties, who, penalty)
            np.add.at(remaining, job, -done)
            hourly[t] += done.sum()

        # Finished jobs leave; jobs out of patience are dropped.
        age += 1
        finished = remaining <= 1e-9
        expired = ~finished & (age >= cfg.patience)
        completed += int(finished.sum())
        dropped += int(expired.sum())
        keep = ~(finished | expired)
        owner, remaining, value, premium, age = (
            a[keep] for a in (owner, remaining, value, premium, age)
        )

    dropped += owner.size  # still waiting when the month ends: never served in full
    return CloudChainResult(
        config=cfg,
        tokens=earned - penalties,
        penalties=penalties,
        market_margin=margin,
        delivered=delivered,
        demanded=demanded,
        served=served,
        paid=paid,
        jobs_submitted=submitted,
        jobs_completed=completed,
        jobs_dropped=dropped,
        pieces=pieces,
        pieces_sla_met=pieces_ok,
        pieces_unsettled=unsettled,
        hourly_units=hourly,
    )
