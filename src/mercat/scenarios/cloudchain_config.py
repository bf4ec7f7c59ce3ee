"""What seed 002's 30-day simulation is made of: providers, requester groups, the market's rules.

The seed ("CloudChain: Decentralized Marketplace for AI Compute Resources") simulates "major
cloud providers (AWS, Google Cloud, Azure, Hetzner, Lambda Labs) and community-based nodes"
(28 providers in its Fig. 4) for 30 days and gives no parameters. Every assumption of
mercat's model is a field here:

- **Providers** (`Provider`): GPUs offered every hourly round (a GPU for an hour is a
  GPU-hour), a cost per GPU-hour (the ask), the probability that a task fails and that a
  task that ran misses its SLA. A cloud offers its GPUs as servers of 8 (the usual
  8-GPU machine); a community node is one server. Relative prices follow the clouds' public
  GPU rates; community nodes are smaller, cheaper and less reliable (drawn once, seeded).
- **Requester groups** (`RequesterGroup`): seed 002's Fig. 5 varies the size of requester
  groups. mercat's groups differ in size, budget and workload: a few labs with large,
  mostly premium training jobs and high budgets; startups; many independents with small
  jobs and low budgets. Each requester submits jobs as a Poisson process; a job needs a
  lognormal number of GPU-hours, bids a value per GPU-hour drawn from its group's range,
  waits at most `patience` rounds, and needs a premium provider (reliability at least
  `premium_reliability`) with its group's `premium_share`.
- **The market's rules**: the oracles (n, q, error rate), eq. 2's penalty factor λ, the
  collective rule of seed 000 (`mechanism`: free, coll-stake, coll-rep or coll-sr; target
  task failure rate; stake per server), and an optional *control* that drops jobs before
  the market sees them (to show what Jain's index can and cannot tell).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError, MercatError
from mercat.incentives.collective import CollectiveRule, mechanism
from mercat.incentives.integer_rule import IntegerRule

CLOUDS = ("AWS", "Google Cloud", "Azure", "Hetzner", "Lambda Labs")
SERVER_GPUS = 8
"""GPUs per cloud server (an 8-GPU machine); a community node is one server."""
# Bounds that keep a run's memory and the book's integers in range (every amount below
# 2^62 base units): waiting jobs are requests in memory, prices times sizes are escrows.
MAX_ARRIVALS_PER_ROUND = 10_000
MAX_WAITING = 1_000_000  # arrivals a round × patience
MAX_ROUNDS = 365 * 24
MAX_GPUS = 100_000  # per provider
MAX_JOB_GPU_HOURS = 10_000  # lognormal mean of a job's size
JOB_GPU_HOURS_CAP = 100_000  # a drawn size above this is cut to it
MAX_SIGMA = 3.0
MAX_PRICE = 10_000.0  # tokens per GPU-hour, for values and costs
MAX_STAKE = 10**9  # tokens
MAX_COMMUNITY = 10_000  # community nodes beside the clouds
UNIT = 10**6
"""Base units per token in the simulation's book."""
DROP_CONTROLS = ("none", "random", "group")


@dataclass(frozen=True)
class Provider:
    name: str
    gpus: int  # GPUs offered each hourly round: GPU-hours per round
    cost: float  # tokens per GPU-hour (its ask)
    failure: float  # probability that a task on it fails
    violation: float  # probability that a task that ran misses its SLA
    cloud: bool

    @property
    def reliability(self) -> float:
        return (1 - self.failure) * (1 - self.violation)

    @property
    def server_gpus(self) -> tuple[int, ...]:
        """GPUs of each of its servers: 8-GPU machines for a cloud, one server otherwise."""
        if not self.cloud:
            return (self.gpus,)
        full, rest = divmod(self.gpus, SERVER_GPUS)
        return (SERVER_GPUS,) * full + ((rest,) if rest else ())


def default_providers(community: int = 23, seed: int = 0) -> tuple[Provider, ...]:
    """The five clouds (sizes and relative prices in the spirit of their GPU offers; the
    seed gives none) and `community` nodes drawn from one seeded generator (at most
    MAX_COMMUNITY)."""
    check.integer("community", community, 0)
    if community > MAX_COMMUNITY:
        raise InvalidParameterError(f"community must be at most {MAX_COMMUNITY:,}, got {community}")
    clouds = (
        Provider("AWS", 320, 3.0, 0.002, 0.003, True),
        Provider("Google Cloud", 280, 2.9, 0.002, 0.004, True),
        Provider("Azure", 280, 3.1, 0.003, 0.004, True),
        Provider("Hetzner", 120, 1.9, 0.006, 0.008, True),
        Provider("Lambda Labs", 200, 2.2, 0.004, 0.005, True),
    )
    rng = np.random.default_rng([seed, 2])
    nodes = tuple(
        Provider(
            f"Community Node {i + 1}",
            int(rng.integers(4, 33)),
            float(np.round(rng.uniform(1.0, 2.4), 2)),
            float(np.round(rng.uniform(0.01, 0.05), 3)),
            float(np.round(rng.uniform(0.01, 0.05), 3)),
            False,
        )
        for i in range(community)
    )
    return clouds + nodes


@dataclass(frozen=True)
class RequesterGroup:
    name: str
    share: float  # of the requesters
    jobs_per_hour: float  # per requester (Poisson)
    mean_gpu_hours: float  # a job's size: lognormal with this mean
    value_low: float  # tokens per GPU-hour the job is worth (uniform in [low, high])
    value_high: float
    premium_share: float  # share of its jobs that need a premium provider
    patience: int  # rounds a job waits before it is dropped
    sigma: float = 0.8  # of the lognormal size

    def check(self) -> None:
        if not re.fullmatch(r"[a-z0-9-]{1,24}", self.name):
            raise InvalidParameterError(f"group name must be 1-24 of [a-z0-9-], got {self.name!r}")
        check.positive(f"group {self.name} share", self.share)
        check.positive(f"group {self.name} jobs_per_hour", self.jobs_per_hour)
        size = check.positive(f"group {self.name} mean_gpu_hours", self.mean_gpu_hours)
        if size > MAX_JOB_GPU_HOURS:
            raise InvalidParameterError(
                f"group {self.name}: mean_gpu_hours above {MAX_JOB_GPU_HOURS}"
            )
        if check.positive(f"group {self.name} sigma", self.sigma) > MAX_SIGMA:
            raise InvalidParameterError(f"group {self.name}: sigma above {MAX_SIGMA}")
        if check.positive(f"group {self.name} value_low", self.value_low) > check.real(
            f"group {self.name} value_high", self.value_high
        ):
            raise InvalidParameterError(f"group {self.name}: value_high must be >= value_low")
        if self.value_high > MAX_PRICE:
            raise InvalidParameterError(
                f"group {self.name}: value_high above {MAX_PRICE:g} tokens per GPU-hour"
            )
        check.probability(f"group {self.name} premium_share", self.premium_share)
        check.integer(f"group {self.name} patience", self.patience, 1)


DEFAULT_GROUPS = (
    RequesterGroup("labs", 0.1, 0.25, 48.0, 3.0, 6.0, 0.8, 12),
    RequesterGroup("startups", 0.3, 0.5, 10.0, 2.2, 4.5, 0.4, 6),
    RequesterGroup("independents", 0.6, 0.5, 4.0, 1.5, 3.5, 0.1, 4),
)


@dataclass(frozen=True)
class CloudChainConfig:
    requesters: int = 100
    days: int = 30
    rounds_per_day: int = 24
    groups: tuple[RequesterGroup, ...] = DEFAULT_GROUPS
    providers: tuple[Provider, ...] = field(default_factory=default_providers)
    premium_reliability: float = 0.99
    deadline_ms: int = 3_600_000  # a task's SLA: done within the hour it was cleared in
    oracles: int = 5
    quorum: int = 3
    oracle_error: float = 0.02
    signed_reports: bool = False  # oracles sign each report; the tally checks signatures
    penalty_factor: float = 0.5  # λ of eq. 2: tokens per oracle report; P = λ·n
    mechanism: str = "coll-stake"  # seed 000's collective rule on the servers' stakes
    target: float = 0.05  # target task failure rate F: the reward R = F·P/(1-F)
    stake: float = 50.0  # tokens staked on each server (S0)
    drop: str = "none"  # control: none, random (every group alike) or group (one group)
    drop_probability: float = 0.0
    drop_group: str = ""

    def __post_init__(self) -> None:
        for name in ("requesters", "days", "rounds_per_day", "oracles", "quorum"):
            check.integer(name, getattr(self, name), 1)
        if self.rounds > MAX_ROUNDS:
            raise InvalidParameterError(f"at most {MAX_ROUNDS} rounds, got {self.rounds}")
        if not self.oracles < 2 * self.quorum <= 2 * self.oracles:
            raise InvalidParameterError(
                f"quorum must be a majority of the {self.oracles} oracles (2q > n) and at most "
                f"n, so that two verdicts cannot both reach it; got {self.quorum}"
            )
        check.probability("oracle_error", self.oracle_error)
        check.probability("premium_reliability", self.premium_reliability)
        check.integer("deadline_ms", self.deadline_ms, 1)
        check.positive("penalty_factor", self.penalty_factor)
        try:
            mechanism(self.mechanism)
        except MercatError as exc:  # an unknown name: the message lists the known rules
            raise InvalidParameterError(f"mechanism: {exc}") from None
        check.open_unit("target", self.target)
        if check.positive("stake", self.stake) > MAX_STAKE:
            raise InvalidParameterError(f"stake above {MAX_STAKE:,} tokens")
        if not self.groups:
            raise InvalidParameterError("the market needs at least one requester group")
        if len(self.groups) > self.requesters:
            raise InvalidParameterError(
                f"{len(self.groups)} groups need at least as many requesters, got {self.requesters}"
            )
        for g in self.groups:
            g.check()
        if len({g.name for g in self.groups}) != len(self.groups):
            raise InvalidParameterError("group names must be unique")
        arrivals = sum(
            n * g.jobs_per_hour for n, g in zip(self.group_sizes, self.groups, strict=True)
        )
        if arrivals > MAX_ARRIVALS_PER_ROUND:
            raise InvalidParameterError(
                f"{arrivals:,.0f} expected job arrivals a round exceeds {MAX_ARRIVALS_PER_ROUND:,}"
            )
        patience = max(g.patience for g in self.groups)
        if arrivals * patience > MAX_WAITING:
            raise InvalidParameterError(
                f"{arrivals:,.0f} arrivals a round waiting up to {patience} rounds could keep "
                f"more than {MAX_WAITING:,} jobs waiting"
            )
        if not self.providers:
            raise InvalidParameterError("the market needs at least one provider")
        if len({p.name for p in self.providers}) != len(self.providers):
            raise InvalidParameterError("provider names must be unique")
        for p in self.providers:
            if check.integer(f"provider {p.name!r} gpus", p.gpus, 1) > MAX_GPUS:
                raise InvalidParameterError(f"provider {p.name!r}: more than {MAX_GPUS} GPUs")
            if check.positive(f"provider {p.name!r} cost", p.cost) > MAX_PRICE:
                raise InvalidParameterError(
                    f"provider {p.name!r}: cost above {MAX_PRICE:g} tokens per GPU-hour"
                )
            for name in ("failure", "violation"):
                if check.probability(f"provider {p.name!r} {name}", getattr(p, name)) == 1:
                    raise InvalidParameterError(
                        f"provider {p.name!r}: {name} probability 1 leaves nothing to sell"
                    )
        check.choice("drop", self.drop, DROP_CONTROLS)
        check.probability("drop_probability", self.drop_probability)
        if self.drop == "group" and self.drop_group not in {g.name for g in self.groups}:
            raise InvalidParameterError(
                f"drop_group must name a group ({', '.join(g.name for g in self.groups)}), "
                f"got {self.drop_group!r}"
            )
        rule = self.integer_rule  # refuses a penalty that is not whole base units
        if rule.removal and rule.is_ruined(round(self.stake * UNIT)):
            raise InvalidParameterError(
                f"stake {self.stake} is at the removal level (P = {self.penalty}): every "
                "server would be removed on arrival"
            )

    @property
    def rounds(self) -> int:
        return self.days * self.rounds_per_day

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Requesters per group: shares of `requesters` by largest remainder, at least one
        each."""
        total = sum(g.share for g in self.groups)
        exact = [self.requesters * g.share / total for g in self.groups]
        sizes = [max(1, math.floor(x)) for x in exact]
        order = sorted(range(len(exact)), key=lambda i: (sizes[i] - exact[i], i))
        k = 0
        while sum(sizes) < self.requesters:
            sizes[order[k % len(order)]] += 1
            k += 1
        while sum(sizes) > self.requesters:  # the minimum of one pushed it over
            i = max((i for i in range(len(sizes)) if sizes[i] > 1),
                    key=lambda i: (sizes[i] - exact[i], -i))  # fmt: skip
            sizes[i] -= 1
        return tuple(sizes)

    @property
    def penalty(self) -> float:
        """Eq. 2's λ_i R_i: λ for each of the n oracle reports on a task that did not pay."""
        return self.penalty_factor * self.oracles

    @property
    def collective_rule(self) -> CollectiveRule:
        return mechanism(self.mechanism).rule(self.stake, self.target, self.penalty)

    @property
    def integer_rule(self) -> IntegerRule:
        return IntegerRule.from_collective(self.collective_rule, UNIT)

    @property
    def stake_weighted(self) -> bool:
        return mechanism(self.mechanism).stake_weighted

    def premium(self, provider: Provider) -> bool:
        return provider.reliability >= self.premium_reliability
