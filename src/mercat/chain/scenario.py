"""Random market scenarios: one sequence of operations, replayed anywhere.

A scenario is a list of plain operations (`Fund`, `Escrow`, `Register`, `Settle`, ...) over
account *names*; `random_scenario` draws one from a seed. `ReferenceMarket` states the
market's rules in plain Python, with the stakes moved by
`mercat.incentives.collective.settle` itself; it decides, while generating, which
operations the market must refuse and with which error (`Op.expect`). `run_on_chain`
replays a scenario on a `ChainMarket` (any backend). The differential tests hold the
chain's final `MarketState`, its settlement events and its refusals to the reference's,
and the parity test holds the SQL ledger to the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mercat.chain.market import ChainMarket, IntegerRuleLike, default_min_stake
from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    MercatError,
    RewardPoolExhaustedError,
    StakeBelowMinimumError,
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
    """Tokens from outside into `account`'s free balance (ledger: the operator's Deposit)."""

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
    """The operator returns a request's escrow to its requester and closes it."""

    request: int


@dataclass(frozen=True)
class Register(Op):
    owner: str
    asset: int
    stake: int


@dataclass(frozen=True)
class Unstake(Op):
    owner: str
    asset: int
    amount: int


@dataclass(frozen=True)
class Release(Op):
    account: str


@dataclass(frozen=True)
class ReplaceAsset(Op):
    owner: str
    old: int
    new: int
    stake: int


@dataclass(frozen=True)
class AdvanceRound(Op):
    round: int


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
    """Free balances, unbonding, escrows, stakes, asset statuses and the pool, keyed by
    scenario names."""

    balances: dict[str, int]
    unbonding: dict[str, int]
    escrows: dict[int, int]
    stakes: dict[int, int]
    statuses: dict[int, str]
    pool: int

    @property
    def total(self) -> int:
        return (
            sum(self.balances.values())
            + sum(self.unbonding.values())
            + sum(self.escrows.values())
            + sum(self.stakes.values())
            + self.pool
        )


@dataclass
class _RefAsset:
    owner: str
    stake: int
    status: str = "active"


@dataclass
class _RefEscrow:
    requester: str
    amount: int = 0
    closed: bool = False


@dataclass(frozen=True)
class StakeChange:
    """One asset's part in a settlement: its stake afterwards and whether it was removed."""

    asset: int
    stake: int
    removed: bool


class ReferenceMarket:
    """The market's rules (Market.vy, and the SQL ledger's) in plain Python.

    It refuses what the scenarios can ask wrongly (overdrafts, repeated settlements,
    unstaking below the minimum, releases before the delay, an exhausted pool) with the
    ledger's error classes, of which the chain's are subclasses, checking in the contract's
    order. Stakes move by `collective.settle`; like the contract it needs a rule that
    removes or floors stakes (the rules of all four mechanisms do).
    """

    def __init__(
        self, rule: IntegerRuleLike, min_stake: int, unstake_delay_rounds: int = 2
    ) -> None:
        self.rule = rule
        self.min_stake = min_stake
        self.unstake_delay_rounds = unstake_delay_rounds
        self.balances: dict[str, int] = {}
        self.unbonding: dict[str, list[tuple[int, int]]] = {}  # owner -> [(amount, round)]
        self.escrows: dict[int, _RefEscrow] = {}
        self.assets: dict[int, _RefAsset] = {}
        self.pool = 0
        self.round = 0
        self.settled: set[tuple[int, int]] = set()

    def state(self) -> MarketState:
        return MarketState(
            balances=dict(self.balances),
            unbonding={k: sum(a for a, _ in v) for k, v in self.unbonding.items()},
            escrows={r: e.amount for r, e in self.escrows.items()},
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

    def _check_new_asset(self, asset: int, stake: int) -> None:
        if asset in self.assets:
            raise AlreadyExistsError(f"asset {asset} already used")
        floor = self.rule.stake_floor or 0
        if stake < self.min_stake or stake < floor:
            raise StakeBelowMinimumError(f"stake {stake} below the minimum")
        if self.rule.stake_cap is not None and stake > self.rule.stake_cap:
            raise MercatError(f"stake {stake} above the cap")

    def apply(self, op: Op) -> list[StakeChange]:
        """Apply one operation; raise a MercatError (state unchanged) when refused. A
        settlement returns what the collective rule did to each of its assets."""
        match op:
            case Fund(account=a, amount=x):
                self._credit(a, x)
            case Withdraw(account=a, amount=x):
                self._debit(a, x)
            case FundPool(account=a, amount=x):
                self._debit(a, x)
                self.pool += x
            case Escrow(requester=who, request=r, amount=x):
                entry = self.escrows.get(r)
                if entry is not None and (entry.requester != who or entry.closed):
                    raise MercatError(f"request {r} is closed or someone else's")
                self._debit(who, x)
                self.escrows.setdefault(r, _RefEscrow(who)).amount += x
            case Refund(request=r):
                entry = self.escrows.get(r)
                if entry is None or entry.closed:
                    raise UnknownRequestError(f"request {r} unknown or closed")
                self._credit(entry.requester, entry.amount)
                entry.amount, entry.closed = 0, True
            case Register(owner=o, asset=a, stake=s):
                self._check_new_asset(a, s)
                self._debit(o, s)
                self.assets[a] = _RefAsset(o, s)
            case Unstake(owner=o, asset=a, amount=x):
                asset = self.assets[a]
                if asset.stake < x:
                    raise InsufficientFundsError(f"asset {a} has {asset.stake} staked")
                remaining = asset.stake - x
                if asset.status == "active":
                    if 0 < remaining < self.min_stake:
                        raise StakeBelowMinimumError(f"{remaining} would stay staked")
                    if remaining == 0:
                        asset.status = "retired"
                asset.stake = remaining
                release_round = self.round + self.unstake_delay_rounds
                self.unbonding.setdefault(o, []).append((x, release_round))
            case Release(account=a):
                queue = self.unbonding.get(a, [])
                matured = [x for x, r in queue if r <= self.round]
                if not matured:
                    raise StakeLockedError(f"nothing of {a} has matured by round {self.round}")
                self.unbonding[a] = [(x, r) for x, r in queue if r > self.round]
                self._credit(a, sum(matured))
            case ReplaceAsset(owner=o, old=old, new=new, stake=s):
                self._check_new_asset(new, s)
                if self.assets[old].status != "removed":
                    raise AssetNotActiveError(f"asset {old} is {self.assets[old].status}")
                carried = self.assets[old].stake
                if s > carried:
                    self._debit(o, s - carried)
                else:
                    self._credit(o, carried - s)
                self.assets[old].stake, self.assets[old].status = 0, "replaced"
                self.assets[new] = _RefAsset(o, s)
            case AdvanceRound(round=r):
                self.round = max(self.round, r)
            case Settle():
                return self._settle(op)
            case _:
                raise TypeError(f"not an operation: {op!r}")
        return []

    def _settle(self, op: Settle) -> list[StakeChange]:
        if (op.round, op.task) in self.settled:
            raise TaskAlreadySettledError(f"task ({op.round}, {op.task}) already settled")
        entry = self.escrows.get(op.request)
        if op.payouts and (entry is None or entry.closed):
            raise UnknownRequestError(f"request {op.request} unknown or closed")
        active = [a for a in op.assets if self.assets[a].status == "active"]
        stakes = {a: self.assets[a].stake for a in active}
        outcome = (
            collective_settle(stakes, active, op.success, self.rule)
            if active
            else None  # nothing left in the market to reward or penalise
        )
        new_stakes = outcome.stakes if outcome else {}
        removed = set(outcome.removed) if outcome else set()
        # A task's assets all get the same outcome, so their pool moves share one sign
        # and checking the total is checking asset by asset.
        pool = self.pool - sum(new_stakes[a] - stakes[a] for a in active)
        if pool < 0:
            raise RewardPoolExhaustedError(f"the pool cannot pay task ({op.round}, {op.task})")
        price = sum(op.payouts)
        if price and entry.amount < price:  # type: ignore[union-attr]
            raise InsufficientFundsError(f"escrow {op.request} holds less than {price}")
        # Accepted: apply.
        self.settled.add((op.round, op.task))
        self.pool = pool
        if price and op.success:
            entry.amount -= price  # type: ignore[union-attr]
            for a, payout in zip(op.assets, op.payouts, strict=True):
                self._credit(self.assets[a].owner, payout)
        for a in active:
            self.assets[a].stake = new_stakes[a]
            if a in removed:
                self.assets[a].status = "removed"
        # The contract logs a stake update only for a rule that moves stakes.
        if not self.rule.moves_stakes:
            return []
        return [StakeChange(a, new_stakes[a], a in removed) for a in active]


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
    replace_every: int = 10  # tasks between two rounds (replacements, then a new round)
    funding: int = 100_000  # each account's first deposit
    pool_funding: int = 2_000
    other_ops: float = 0.3  # chance of a non-settlement operation before each task


def random_scenario(
    rule: IntegerRuleLike,
    seed: int,
    config: ScenarioConfig = ScenarioConfig(),
    min_stake: int | None = None,
    unstake_delay_rounds: int = 2,
) -> list[Op]:
    """Draw a scenario from `seed`: deposits, pool funding, asset registrations, escrows,
    settlements with random outcomes and payouts, replacement of removed assets and a new
    round every `replace_every` tasks, unstaking and releases, withdrawals, refunds, and
    operations the market must refuse (a repeated settlement, an overdraft, a release
    before the delay, unstaking below the minimum), each marked with its error."""
    rng = np.random.default_rng(seed)
    if min_stake is None:
        min_stake = default_min_stake(rule)
    ref = ReferenceMarket(rule, min_stake, unstake_delay_rounds)
    ops: list[Op] = []

    def emit(op: Op) -> bool:
        try:
            ref.apply(op)
        except MercatError as exc:
            op = replace(op, expect=type(exc).__name__)
        ops.append(op)
        return op.expect is None

    def pick(items: Sequence) -> object:
        return items[int(rng.integers(len(items)))]

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
        if emit(Escrow(who, next_request, config.funding // 4)):
            open_requests[next_request] = who
        next_request += 1

    settled: list[Settle] = []
    for task in range(config.tasks):
        if task and task % config.replace_every == 0:
            # Seed 000 replaces removed assets every T tasks; each replacement carries the
            # removed asset's remaining stake over.
            for old, asset in sorted(ref.assets.items()):
                if asset.status == "removed":
                    emit(ReplaceAsset(asset.owner, old, next_asset, config.initial_stake))
                    next_asset += 1
            emit(AdvanceRound(ref.round + 1))
        if rng.random() < config.other_ops:
            kind = int(rng.integers(8))
            active = sorted(a for a, s in ref.assets.items() if s.status == "active")
            if kind == 0:
                emit(Withdraw(pick(providers), int(rng.integers(1, 2 * config.funding))))
            elif kind == 1 and open_requests:
                request = int(pick(sorted(open_requests)))
                emit(Escrow(open_requests[request], request, int(rng.integers(1, 5000))))
            elif kind == 2 and open_requests:
                request = int(pick(sorted(open_requests)))
                who = open_requests.pop(request)
                emit(Refund(request))
                if emit(Escrow(who, next_request, config.funding // 4)):
                    open_requests[next_request] = who
                next_request += 1
            elif kind == 3 and len(active) > config.assets_per_task + 1:
                a = int(pick(active))  # partial: may leave less than the minimum
                stake = ref.assets[a].stake
                emit(
                    Unstake(ref.assets[a].owner, a, int(rng.integers(1, stake)) if stake > 1 else 1)
                )
            elif kind == 4 and len(active) > config.assets_per_task + 1:
                a = int(pick(active))  # all of it: the asset retires
                emit(Unstake(ref.assets[a].owner, a, ref.assets[a].stake))
            elif kind == 5:
                removed = [a for a, s in ref.assets.items() if s.status == "removed" and s.stake]
                if removed:
                    a = int(pick(removed))
                    emit(Unstake(ref.assets[a].owner, a, ref.assets[a].stake))
            elif kind == 6:
                emit(Release(pick(providers)))  # may find nothing matured
            elif kind == 7 and settled:
                again = pick(settled)
                emit(replace(again, success=not again.success))  # same id: refused

        active = sorted(a for a, s in ref.assets.items() if s.status == "active")
        owner = providers[task % len(providers)]
        while len(active) < config.assets_per_task:
            emit(Register(owner, next_asset, config.initial_stake))
            active.append(next_asset)
            next_asset += 1
        chosen = tuple(sorted(int(a) for a in rng.choice(active, config.assets_per_task, False)))
        success = bool(rng.random() >= config.failure_rate)
        request, payouts = 0, ()
        if open_requests and rng.random() < 0.8:
            request = int(pick(sorted(open_requests)))
            payouts = tuple(int(p) for p in rng.integers(0, config.funding // 400, len(chosen)))
        op = Settle(ref.round, task, request, chosen, payouts, success)
        if emit(op):
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


def apply_on_chain(market: ChainMarket, accounts: dict[str, str], op: Op):
    """Send one operation to `market`; `accounts` maps scenario names to addresses."""
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
        case Unstake(owner=o, asset=a, amount=x):
            return market.unstake(accounts[o], a, x)
        case Release(account=a):
            return market.release(accounts[a])
        case ReplaceAsset(owner=o, old=old, new=new, stake=s):
            return market.replace_asset(accounts[o], old, new, s)
        case AdvanceRound(round=r):
            return market.advance_round(r)
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


def asset_ids(ops: Sequence[Op]) -> list[int]:
    """Every asset id a scenario registers (directly or as a replacement)."""
    ids = {op.asset for op in ops if isinstance(op, Register)}
    ids |= {op.new for op in ops if isinstance(op, ReplaceAsset)}
    return sorted(ids)


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
            result = apply_on_chain(market, accounts, op)
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
    assets = {a: market.asset(a) for a in asset_ids(ops)}
    assets = {a: s for a, s in assets.items() if s.status != "unused"}
    requests = sorted({op.request for op in ops if isinstance(op, Escrow)})
    escrows = {r: market.escrow_of(r) for r in requests}
    return MarketState(
        balances={name: market.balance(address) for name, address in accounts.items()},
        unbonding={name: market.unbonding(address) for name, address in accounts.items()},
        escrows={r: e.amount for r, e in escrows.items() if e.requester != _NOBODY},
        stakes={a: s.stake for a, s in assets.items()},
        statuses={a: s.status for a, s in assets.items()},
        pool=market.reward_pool(),
    )


def reference_run(
    rule: IntegerRuleLike, ops: Sequence[Op], min_stake: int, unstake_delay_rounds: int = 2
) -> tuple[MarketState, list[list[StakeChange]]]:
    """Replay `ops` on a fresh `ReferenceMarket`: final state and per-settlement changes
    (refused operations skipped, as on chain). Unbonding and balances are reported for
    every account the scenario names, as on chain."""
    ref = ReferenceMarket(rule, min_stake, unstake_delay_rounds)
    settlements = []
    for op in ops:
        try:
            changes = ref.apply(op)
        except MercatError:
            continue
        if isinstance(op, Settle):
            settlements.append(changes)
    state = ref.state()
    names = account_names(ops)
    return (
        replace(
            state,
            balances={n: state.balances.get(n, 0) for n in names},
            unbonding={n: state.unbonding.get(n, 0) for n in names},
        ),
        settlements,
    )
