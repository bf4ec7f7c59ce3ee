"""Random market scenarios, and their replay on a chain.

`random_scenario` draws a list of operations (`mercat.chain.ops`) from a seed, asking the
Python reference (`mercat.chain.reference`) which of them the market must refuse and with
which error (`Op.expect`). `run_on_chain` replays a scenario on a `ChainMarket` (any
backend) and returns its final `MarketState`, its settlement events and its refusals; the
differential tests hold them to the reference's, and the parity test holds the SQL ledger
to the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mercat.chain.market import ChainMarket, IntegerRuleLike, default_min_stake
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
    asset_ids,
)
from mercat.chain.reference import MarketState, ReferenceMarket, StakeChange
from mercat.errors import MercatError


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
