"""Random market scenarios: one sequence of operations, replayed anywhere.

A scenario is a list of plain operations (`Fund`, `Escrow`, `Register`, `Settle`, ...) over
account *names*; `random_scenario` draws one from a seed. `ReferenceMarket` is the contract's
semantics in plain Python, with the stakes moved by `mercat.incentives.collective.settle`
itself; it decides, while generating, which operations the market must refuse and with
which error (`Op.expect`). `run_on_chain` replays a scenario on a `ChainMarket` (any
backend); the differential tests hold the chain's final `MarketState`, its settlement
events and its refusals to the reference's, and the parity test holds the SQL ledger to
the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mercat.chain.market import ChainMarket, IntegerRuleLike
from mercat.errors import (
    AssetNotActiveError,
    InsufficientFundsError,
    MercatError,
    RewardPoolExhaustedError,
    StakeLockedError,
    TaskAlreadySettledError,
    UnknownRequestError,
)
from mercat.incentives.collective import settle as collective_settle

# --- operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """Base of all operations. `expect`: name of the error class the market must raise
    (a chain error is an instance of it), None when the operation must succeed."""

    expect: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Fund(Op):
    account: str
    amount: int


@dataclass(frozen=True)
class Withdraw(Op):
    account: str
    amount: int


@dataclass(frozen=True)
class FundPool(Op):
    account: str
    amount: int


@dataclass(frozen=True)
class Escrow(Op):
    requester: str
    request: int
    amount: int


@dataclass(frozen=True)
class Refund(Op):
    request: int


@dataclass(frozen=True)
class Register(Op):
    owner: str
    asset: int
    stake: int


@dataclass(frozen=True)
class Retire(Op):
    owner: str
    asset: int


@dataclass(frozen=True)
class WithdrawStake(Op):
    owner: str
    asset: int


@dataclass(frozen=True)
class AdvanceRound(Op):
    pass


@dataclass(frozen=True)
class Settle(Op):
    round: int
    task: int
    request: int
    assets: tuple[int, ...]  # ascending
    payouts: tuple[int, ...]  # empty: no payment
    success: bool


# --- state and the reference ---------------------------------------------------------------


@dataclass(frozen=True)
class MarketState:
    """Balances, escrows, stakes, asset statuses and the pool, keyed by scenario names."""

    balances: dict[str, int]
    escrows: dict[int, int]
    stakes: dict[int, int]
    statuses: dict[int, str]
    pool: int

    @property
    def total(self) -> int:
        return (
            sum(self.balances.values())
            + sum(self.escrows.values())
            + sum(self.stakes.values())
            + self.pool
        )


@dataclass
class _RefAsset:
    owner: str
    stake: int
    status: str = "active"
    unlock_round: int = 0


@dataclass(frozen=True)
class StakeChange:
    """One asset's part in a settlement: its stake afterwards and whether it was removed."""

    asset: int
    stake: int
    removed: bool


class ReferenceMarket:
    """The market contract's rules in plain Python (see Market.vy for the reasons).

    It refuses what the scenarios can ask wrongly (overdrafts, repeated settlements, early
    stake withdrawals, an exhausted pool, inactive assets) with the ledger's error classes,
    of which the chain's are subclasses, and checks them in the contract's order. Stakes
    move by `collective.settle`, which (like the contract) needs a rule that removes or
    floors stakes to keep them non-negative.
    """

    def __init__(
        self, rule: IntegerRuleLike, min_stake: int, unstake_delay_rounds: int = 10
    ) -> None:
        self.rule = rule
        self.min_stake = min_stake
        self.unstake_delay_rounds = unstake_delay_rounds
        self.balances: dict[str, int] = {}
        self.escrows: dict[int, list] = {}  # request -> [requester, amount, closed]
        self.assets: dict[int, _RefAsset] = {}
        self.pool = 0
        self.round = 0
        self.settled: set[tuple[int, int]] = set()
        self.deposited = 0

    def state(self) -> MarketState:
        return MarketState(
            balances={k: v for k, v in self.balances.items()},
            escrows={r: e[1] for r, e in self.escrows.items()},
            stakes={a: s.stake for a, s in self.assets.items()},
            statuses={a: s.status for a, s in self.assets.items()},
            pool=self.pool,
        )

    def _debit(self, account: str, amount: int) -> None:
        if self.balances.get(account, 0) < amount:
            raise InsufficientFundsError(f"{account} holds less than {amount}")
        self.balances[account] -= amount

    def _credit(self, account: str, amount: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + amount

    def apply(self, op: Op) -> list[StakeChange]:
        """Apply one operation; raise a MercatError (state unchanged) when refused. A
        settlement returns what the collective rule did to each of its assets."""
        match op:
            case Fund(account=a, amount=x):
                self._credit(a, x)
                self.deposited += x
            case Withdraw(account=a, amount=x):
                self._debit(a, x)
                self.deposited -= x
            case FundPool(account=a, amount=x):
                self._debit(a, x)
                self.pool += x
            case Escrow(requester=who, request=r, amount=x):
                entry = self.escrows.get(r)
                if entry is not None and (entry[0] != who or entry[2]):
                    raise MercatError(f"request {r} is closed or someone else's")
                self._debit(who, x)
                if entry is None:
                    self.escrows[r] = [who, 0, False]
                self.escrows[r][1] += x
            case Refund(request=r):
                who, amount, closed = self.escrows[r]
                if closed:
                    raise MercatError(f"request {r} closed")
                self.escrows[r] = [who, 0, True]
                self._credit(who, amount)
            case Register(owner=o, asset=a, stake=s):
                if a in self.assets:
                    raise MercatError(f"asset {a} already used")
                self._debit(o, s)
                self.assets[a] = _RefAsset(o, s)
            case Retire(owner=o, asset=a):
                asset = self.assets[a]
                if asset.status != "active":
                    raise AssetNotActiveError(f"asset {a} is {asset.status}")
                asset.status = "retiring"
                asset.unlock_round = self.round + self.unstake_delay_rounds
            case WithdrawStake(owner=o, asset=a):
                asset = self.assets[a]
                if asset.status != "retiring":
                    raise AssetNotActiveError(f"asset {a} is {asset.status}")
                if self.round < asset.unlock_round:
                    raise StakeLockedError(f"asset {a} unlocks at round {asset.unlock_round}")
                self._credit(o, asset.stake)
                asset.stake, asset.status = 0, "withdrawn"
            case AdvanceRound():
                self.round += 1
            case Settle():
                return self._settle(op)
            case _:
                raise TypeError(f"not an operation: {op!r}")
        return []

    def _settle(self, op: Settle) -> list[StakeChange]:
        if (op.round, op.task) in self.settled:
            raise TaskAlreadySettledError(f"task ({op.round}, {op.task}) already settled")
        if op.payouts and (op.request not in self.escrows or self.escrows[op.request][2]):
            raise UnknownRequestError(f"request {op.request} unknown or closed")
        stakes = {a: self.assets[a].stake for a in op.assets}
        outcome = collective_settle(stakes, list(op.assets), op.success, self.rule)
        new_stakes, removed = outcome.stakes, set(outcome.removed)
        # The contract's order: asset by asset, its status then the pool (a shortfall at
        # any asset refuses the whole settlement); the escrow after the loop.
        pool = self.pool
        for a in op.assets:
            if self.assets[a].status not in ("active", "retiring"):
                raise AssetNotActiveError(f"asset {a} is {self.assets[a].status}")
            pool -= new_stakes[a] - stakes[a]
            if pool < 0:
                raise RewardPoolExhaustedError(f"the pool cannot pay task ({op.round}, {op.task})")
        paid = sum(op.payouts) if op.success else 0
        if paid and self.escrows[op.request][1] < paid:
            raise InsufficientFundsError(f"escrow {op.request} holds less than {paid}")
        # Accepted: apply.
        self.settled.add((op.round, op.task))
        self.pool = pool
        if paid:
            self.escrows[op.request][1] -= paid
            for a, payout in zip(op.assets, op.payouts, strict=True):
                self._credit(self.assets[a].owner, payout)
        changes = []
        for a in op.assets:
            asset = self.assets[a]
            asset.stake = new_stakes[a]
            if a in removed:
                self._credit(asset.owner, asset.stake)
                asset.stake, asset.status = 0, "removed"
            changes.append(StakeChange(a, new_stakes[a], a in removed))
        # The contract logs a stake update only for a rule that moves stakes.
        return changes if self.rule.moves_stakes else []


# --- random scenarios ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioConfig:
    """Shape of a random scenario. Amounts are in base units."""

    providers: int = 3
    requesters: int = 2
    assets_per_provider: int = 3
    tasks: int = 40
    assets_per_task: int = 4
    initial_stake: int = 990
    failure_rate: float = 0.2  # chance that a task fails
    replace_every: int = 10  # tasks between two rounds of replacing removed assets
    funding: int = 100_000  # each account's first deposit
    pool_funding: int = 2_000


def random_scenario(
    rule: IntegerRuleLike,
    seed: int,
    config: ScenarioConfig = ScenarioConfig(),
    min_stake: int | None = None,
    unstake_delay_rounds: int = 2,
) -> list[Op]:
    """Draw a scenario from `seed`: deposits, pool funding, asset registrations, escrows,
    settlements with random outcomes and payouts, replacements of removed assets, round
    changes, unstaking, refunds, and some operations the market must refuse (a repeated
    settlement, an overdraft, an early stake withdrawal), each marked with its error."""
    rng = np.random.default_rng(seed)
    if min_stake is None:
        min_stake = rule.penalty + 1 if rule.removal_inclusive else rule.penalty
    ref = ReferenceMarket(rule, min_stake, unstake_delay_rounds)
    ops: list[Op] = []

    def emit(op: Op) -> None:
        try:
            ref.apply(op)
        except MercatError as exc:
            op = replace(op, expect=type(exc).__name__)
        ops.append(op)

    providers = [f"provider{i}" for i in range(config.providers)]
    requesters = [f"requester{i}" for i in range(config.requesters)]
    for account in providers + requesters:
        emit(Fund(account, config.funding))
    emit(FundPool(providers[0], config.pool_funding))
    next_asset, next_request = 1, 1
    for owner in providers:
        for _ in range(config.assets_per_provider):
            emit(Register(owner, next_asset, config.initial_stake))
            next_asset += 1
    open_requests: dict[int, str] = {}
    for who in requesters:
        emit(Escrow(who, next_request, config.funding // 4))
        open_requests[next_request] = who
        next_request += 1

    settled: list[Settle] = []
    replaced: set[int] = set()
    for task in range(config.tasks):
        if task and task % config.replace_every == 0:
            # Replace removed and withdrawn assets with new ones (seed 000: every T tasks).
            gone = [
                a
                for a, s in ref.assets.items()
                if s.status in ("removed", "withdrawn") and a not in replaced
            ]
            for a in gone:
                replaced.add(a)
                owner = ref.assets[a].owner
                emit(Register(owner, next_asset, config.initial_stake))
                next_asset += 1
            emit(AdvanceRound())
        roll = rng.random()
        if roll < 0.08:
            who = providers[int(rng.integers(len(providers)))]
            emit(Withdraw(who, int(rng.integers(1, 2 * config.funding))))  # may overdraw
        elif roll < 0.14 and open_requests:
            request = int(rng.choice(sorted(open_requests)))
            emit(Escrow(open_requests[request], request, int(rng.integers(1, config.funding // 8))))
        elif roll < 0.17 and open_requests:
            request = int(rng.choice(sorted(open_requests)))
            emit(Refund(request))
            who = open_requests.pop(request)
            emit(Escrow(who, next_request, config.funding // 4))
            if ops[-1].expect is None:
                open_requests[next_request] = who
            next_request += 1
        elif roll < 0.20:
            active = [a for a, s in ref.assets.items() if s.status == "active"]
            if len(active) > config.assets_per_task + 1:
                a = int(rng.choice(active))
                emit(Retire(ref.assets[a].owner, a))
        elif roll < 0.24:
            retiring = [a for a, s in ref.assets.items() if s.status == "retiring"]
            if retiring:
                a = int(rng.choice(retiring))
                emit(WithdrawStake(ref.assets[a].owner, a))  # may be locked still
        elif roll < 0.28 and settled:
            again = settled[int(rng.integers(len(settled)))]
            emit(Settle(again.round, again.task, again.request, again.assets, again.payouts, True))

        active = sorted(a for a, s in ref.assets.items() if s.status == "active")
        if len(active) < config.assets_per_task:
            owner = providers[task % len(providers)]
            while len(active) < config.assets_per_task:
                emit(Register(owner, next_asset, config.initial_stake))
                active.append(next_asset)
                next_asset += 1
        chosen = tuple(
            sorted(int(a) for a in rng.choice(active, config.assets_per_task, replace=False))
        )
        success = bool(rng.random() >= config.failure_rate)
        request = int(rng.choice(sorted(open_requests))) if open_requests else 0
        payouts: tuple[int, ...] = ()
        if request and rng.random() < 0.7:
            payouts = tuple(int(p) for p in rng.integers(0, config.funding // 100, len(chosen)))
        op = Settle(ref.round, task, request, chosen, payouts, success)
        emit(op)
        if ops[-1].expect is None:
            settled.append(op)
    return ops


# --- replay on a chain ---------------------------------------------------------------------

_NOBODY = "0x" + "0" * 40


@dataclass
class ChainRun:
    """What a scenario did on a chain: final state, per-settlement stake changes, the
    error class each operation raised (None when accepted) and the gas of settlements."""

    state: MarketState
    settlements: list[list[StakeChange]]
    raised: list[str | None]
    settle_gas: list[int]


def _apply_on_chain(market: ChainMarket, accounts: dict[str, str], op: Op):
    match op:
        case Fund(account=a, amount=x):
            return market.fund(accounts[a], x)
        case Withdraw(account=a, amount=x):
            return market.withdraw(accounts[a], x)
        case FundPool(account=a, amount=x):
            return market.fund_pool(accounts[a], x)
        case Escrow(requester=who, request=r, amount=x):
            return market.escrow(accounts[who], r, x)
        case Refund(request=r):
            return market.refund(r)
        case Register(owner=o, asset=a, stake=s):
            return market.register_asset(accounts[o], a, s)
        case Retire(owner=o, asset=a):
            return market.retire(accounts[o], a)
        case WithdrawStake(owner=o, asset=a):
            return market.withdraw_stake(accounts[o], a)
        case AdvanceRound():
            return market.advance_round()
        case Settle():
            payouts = op.payouts or None
            return market.settle(op.round, op.task, op.assets, op.success, op.request, payouts)
    raise TypeError(f"not an operation: {op!r}")


def account_names(ops: Sequence[Op]) -> list[str]:
    """The account names a scenario uses, in order of first appearance."""
    names: dict[str, None] = {}
    for op in ops:
        for attr in ("account", "requester", "owner"):
            if hasattr(op, attr):
                names.setdefault(getattr(op, attr))
    return list(names)


def run_on_chain(market: ChainMarket, ops: Sequence[Op]) -> ChainRun:
    """Replay `ops` on `market`. An operation marked `expect` must raise that error (or a
    subclass); the run raises AssertionError if the chain accepts what it should refuse or
    refuses what it should accept."""
    accounts = {name: market.new_account() for name in account_names(ops)}
    settlements: list[list[StakeChange]] = []
    raised: list[str | None] = []
    gas: list[int] = []
    for i, op in enumerate(ops):
        try:
            result = _apply_on_chain(market, accounts, op)
        except MercatError as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if op.expect is None or op.expect not in names:
                raise AssertionError(f"op {i} {op!r} raised {exc!r}") from exc
            raised.append(op.expect)
            continue
        if op.expect is not None:
            raise AssertionError(f"op {i} {op!r} was accepted; expected {op.expect}")
        raised.append(None)
        if isinstance(op, Settle):
            removed = {e.args["asset"] for e in result.events if e.name == "AssetRemoved"}
            settlements.append(
                [
                    StakeChange(e.args["asset"], e.args["stake"], e.args["asset"] in removed)
                    for e in result.events
                    if e.name == "StakeUpdated"
                ]
            )
            if result.gas_used is not None:
                gas.append(result.gas_used)
    return ChainRun(chain_state(market, accounts, ops), settlements, raised, gas)


def chain_state(market: ChainMarket, accounts: dict[str, str], ops: Sequence[Op]) -> MarketState:
    """The chain's state in scenario names: every account, and the assets and requests that
    `ops` mention and that exist on chain (a refused registration or escrow leaves none)."""
    asset_ids = sorted({op.asset for op in ops if isinstance(op, Register)})
    assets = {a: market.asset(a) for a in asset_ids}
    assets = {a: s for a, s in assets.items() if s.status != "unused"}
    requests = sorted({op.request for op in ops if isinstance(op, Escrow)})
    escrows = {r: market.escrow_of(r) for r in requests}
    return MarketState(
        balances={name: market.balance(address) for name, address in accounts.items()},
        escrows={r: e.amount for r, e in escrows.items() if e.requester != _NOBODY},
        stakes={a: s.stake for a, s in assets.items()},
        statuses={a: s.status for a, s in assets.items()},
        pool=market.reward_pool(),
    )


def reference_run(
    rule: IntegerRuleLike, ops: Sequence[Op], min_stake: int, unstake_delay_rounds: int = 2
) -> tuple[MarketState, list[list[StakeChange]]]:
    """Replay `ops` on a fresh `ReferenceMarket`: final state and per-settlement changes
    (refused operations skipped, as on chain)."""
    ref = ReferenceMarket(rule, min_stake, unstake_delay_rounds)
    settlements = []
    for op in ops:
        try:
            changes = ref.apply(op)
        except MercatError:
            continue
        if isinstance(op, Settle):
            settlements.append(changes)
    return ref.state(), settlements
