"""A devnet's starting point: who takes part, what they offer, and the ledger they start on.

`DevnetSetup` says how many providers, oracles and requesters, how many of the providers
are failure-prone and how, the collective rule and the money, the round loop's pace. From
it, with one seed:

- `DevnetKeys` draws every participant's key (held in memory; the devnet hands each child
  its key on standard input, never through a file);
- `genesis` creates the ledger: the operator's account funds the reward pool, the oracles
  join the oracle set, every provider and requester opens its account (signing it) and is
  given its starting tokens, as a local chain's genesis block funds its dev accounts;
- `provider_plan` says what each provider agent offers: its servers (capacity, costs,
  stake) with their failure injection, and for the first provider a model asset offered by
  CID (requests that name it bind it, and pay its owner).

Defaults show the seeds at work: under Coll-SR (seed 000) with a small stake S0 = 4 tokens
and penalty P = 1 token, a failure-prone server (F_a = 0.3, plus late and wrong outputs)
loses its stake in a few rounds and is removed, reliable ones keep theirs, and requesters
get trained models, predictions and DP federated rounds (seed 002) back by CID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.identity import Keypair
from mercat.incentives.collective import mechanism as collective_mechanism
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import messages as m
from mercat.ledger.config import LedgerConfig
from mercat.ledger.ledger import Ledger
from mercat.node.agent import ContentSpec, ServerSpec
from mercat.workloads import datasets

UNIT = 10**6  # base units per token
UNIT_COST_MECHANISMS = ("double-auction", "distributed-auction")


@dataclass(frozen=True)
class DevnetSetup:
    providers: int = 4
    servers_per_provider: int = 2
    oracles: int = 3
    requesters: int = 5
    rounds: int = 5
    per_round: int = 2  # requests each requester posts per round
    failure_prone: float = 0.5  # share of providers whose servers fail often
    prone_failure_rate: float = 0.3  # their F_a
    prone_slow_rate: float = 0.05
    prone_wrong_rate: float = 0.05
    steady_failure_rate: float = 0.01
    collective: str = "coll-sr"
    mechanism: str = "optimal"
    stake: float = 4.0  # S0, tokens
    penalty: float = 1.0  # P, tokens
    target: float = 0.01  # the task failure target the reward is calibrated to
    round_seconds: float = 1.0
    deadline_ms: int = 20_000
    grace_ms: int = 2_000
    attest_seconds: float = 30.0
    sample_rate: float = 0.25
    sealed_share: float = 0.0  # requests whose inputs and output are sealed (sealing.py)
    # m > 0: seed 003's auctioneer as m `mercat provider` processes (k = (m - 1) // 2)
    # clearing each round (mercat.auctioneer.remote); 0: the mechanism in the node
    auctioneer_processes: int = 0
    liars: int = 0
    silent: int = 0
    model_asset: bool = True
    seed: int = 1
    budget_tokens: int = 1_000  # each participant's starting tokens
    pool_tokens: int = 1_000

    def __post_init__(self) -> None:
        for name in ("providers", "servers_per_provider", "oracles", "requesters", "rounds",
                     "per_round"):  # fmt: skip
            check.integer(name, getattr(self, name), 1)
        for name in ("liars", "silent"):
            check.integer(name, getattr(self, name), 0)
        rates = ("failure_prone", "prone_failure_rate", "prone_slow_rate", "prone_wrong_rate",
                 "steady_failure_rate", "sample_rate", "target", "sealed_share")  # fmt: skip
        for name in rates:
            check.probability(name, getattr(self, name))
        check.positive("stake", self.stake)
        check.positive("penalty", self.penalty)
        check.non_negative("round_seconds", self.round_seconds)
        check.integer("auctioneer_processes", self.auctioneer_processes, 0)
        if self.auctioneer_processes and (
            self.mechanism != "distributed-auction" or self.auctioneer_processes < 3
        ):
            raise InvalidParameterError(
                "auctioneer processes run seed 003's auction: give --mechanism "
                "distributed-auction and at least 3 of them (m > 2k with k >= 1)"
            )
        if self.liars + self.silent >= self.quorum:
            raise InvalidParameterError(
                f"{self.liars} lying and {self.silent} silent oracles of {self.oracles} leave "
                f"fewer than the quorum of {self.quorum} honest ones"
            )

    @property
    def unit_costs_only(self) -> bool:
        """Whether the mechanism is one of seed 003's auctions, which clear markets of one
        resource priced per unit: then servers ask no fixed cost, no model asset is offered
        and requests ask for one replica."""
        return self.mechanism in UNIT_COST_MECHANISMS

    @property
    def max_replicas(self) -> int:
        return 1 if self.unit_costs_only else 16

    @property
    def quorum(self) -> int:
        """A strict majority of the oracles (two verdicts can never both reach it)."""
        return self.oracles // 2 + 1

    def rule(self) -> IntegerRule:
        spec = collective_mechanism(self.collective)
        rule = spec.rule(initial_stake=self.stake, task_target=self.target, penalty=self.penalty)
        return IntegerRule.from_collective(rule, UNIT)

    def behaviours(self) -> list[str]:
        """Each oracle's behaviour: the liars first, then the silent, then honest ones."""
        return (["liar"] * self.liars + ["silent"] * self.silent
                + ["honest"] * (self.oracles - self.liars - self.silent))  # fmt: skip


@dataclass
class DevnetKeys:
    operator: Keypair
    providers: list[Keypair]
    oracles: list[Keypair]
    requesters: list[Keypair]
    sample_secret: bytes = field(default=b"", repr=False)
    auctioneers: list[Keypair] = field(default_factory=list)  # seed 003's m providers
    auctioneer_client: Keypair | None = None  # the node's key as their sealing client

    @classmethod
    def generate(cls, setup: DevnetSetup) -> DevnetKeys:
        import secrets

        return cls(
            Keypair.generate(),
            [Keypair.generate() for _ in range(setup.providers)],
            [Keypair.generate() for _ in range(setup.oracles)],
            [Keypair.generate() for _ in range(setup.requesters)],
            secrets.token_bytes(32),
            [Keypair.generate() for _ in range(setup.auctioneer_processes)],
            Keypair.generate() if setup.auctioneer_processes else None,
        )


def genesis(url: str, setup: DevnetSetup, keys: DevnetKeys, *, durable: bool = False) -> Ledger:
    """Create the devnet's ledger at `url` (module docstring). `durable=False`: SQLite
    commits survive a killed process but not a power cut (a devnet's ledger is scratch)."""
    config = LedgerConfig(operator=keys.operator.public, rule=setup.rule(), quorum=setup.quorum,
                          unit=UNIT)  # fmt: skip
    ledger = Ledger.init(url, config, durable=durable)
    operator = m.Signer(keys.operator, ledger.id)
    budget = setup.budget_tokens * UNIT
    messages = [operator.sign(m.AddOracle(oracle=k.public)) for k in keys.oracles]
    # The operator funds the reward pool and keeps as much again: under a mechanism whose
    # market-maker keeps the margin (optimal, posted prices), subsidies come from it.
    messages.append(operator.sign(m.Deposit(account=keys.operator.public,
                                            amount=2 * setup.pool_tokens * UNIT)))  # fmt: skip
    messages.append(operator.sign(m.FundPool(amount=setup.pool_tokens * UNIT)))
    for key in keys.providers + keys.requesters:
        messages.append(m.Signer(key, ledger.id).sign(m.OpenAccount()))
        messages.append(operator.sign(m.Deposit(account=key.public, amount=budget)))
    for message in messages:
        ledger.submit(message)
    return ledger


def tokens(amount: float) -> int:
    """Tokens in base units, exactly (`0.3` is 300000, not 299999)."""
    return int(Fraction(str(amount)) * UNIT)


def provider_plan(setup: DevnetSetup, index: int) -> tuple[list[ServerSpec], list[ContentSpec]]:
    """What provider `index` (0-based) offers (module docstring). Providers are
    failure-prone by a draw from the setup's seed, so a devnet is the same run to run."""
    rng = np.random.default_rng([setup.seed, index])
    prone_count = round(setup.failure_prone * setup.providers)
    prone = index >= setup.providers - prone_count  # the last ones: the summary lists them
    servers = []
    cost = tokens(round(float(rng.uniform(0.05, 0.2)), 3))  # one price list per provider
    if setup.unit_costs_only:
        cost = 0
    for s in range(setup.servers_per_provider):
        servers.append(
            ServerSpec(
                asset=f"p{index + 1}-s{s + 1}",
                stake=tokens(setup.stake),
                capacity={"cpu": 2},
                cost=cost,
                unit_costs={"cpu": tokens(round(0.3 + 0.05 * index, 3))},
                failure_rate=setup.prone_failure_rate if prone else setup.steady_failure_rate,
                slow_rate=setup.prone_slow_rate if prone else 0.0,
                wrong_rate=setup.prone_wrong_rate if prone else 0.0,
            )
        )
    content = []
    if setup.model_asset and not setup.unit_costs_only and index == 0:
        content.append(
            ContentSpec(
                "p1-model",
                "model",
                tokens(setup.stake),
                tokens(0.25),
                datasets.random_model(8, setup.seed),
            )
        )
    return servers, content
