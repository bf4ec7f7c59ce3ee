"""The market's rules in plain Python: Market.vy (and the SQL ledger) restated with
`mercat.incentives.collective.settle` moving the stakes. The scenario generator asks it
which operations the market must refuse; the differential tests hold the chain to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from mercat.chain.market import IntegerRuleLike
from mercat.chain.ops import (
    AdvanceRound,
    Escrow,
    Fund,
    FundPool,
    Op,
    Refund,
    Register,
    Release,
    ReplaceAsset,
    Settle,
    Unstake,
    Withdraw,
    account_names,
)
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
