"""Handlers of the operations that move money and stake (everything but tasks).

Each handler runs inside the message's transaction, after the signature, the signer's
account and the nonce were checked and the journal entry was appended. It checks what it
needs *before* posting; any exception rolls the whole message back. A handler returns a
small dict that the receipt carries back to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import exists, func, insert, select, update

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    LedgerIntegrityError,
    StakeAboveCapError,
    StakeBelowMinimumError,
    StakeLockedError,
    UnauthorizedError,
)
from mercat.ledger import messages as m
from mercat.ledger import schema as s
from mercat.ledger.context import (
    POOL,
    WORLD,
    Context,
    avail,
    stake_book,
    unbond,
)
from mercat.runtime.limits import check_stake

Handler = Callable[[Context, Any], dict[str, Any]]


def _move(ctx: Context, source: str, target: str, amount: int) -> None:
    """Move `amount` from one book to another. A move from a book to itself (a transfer to
    oneself) needs the funds, as on the contract, and posts nothing."""
    balances = ctx.tx.lock_books([source, target])
    if source == target:
        if source not in balances:
            raise LedgerIntegrityError(f"posting to book {source!r} that was not locked")
        if balances[source] < amount:
            raise InsufficientFundsError(f"{source} holds {balances[source]}, cannot pay {amount}")
        return
    ctx.post({source: -amount, target: amount}, balances)


# --- accounts and the clock ----------------------------------------------------------------


def open_account(ctx: Context, op: m.OpenAccount) -> dict[str, Any]:
    ctx.open_account(ctx.signer, "user")
    return {"account": ctx.signer}


def add_oracle(ctx: Context, op: m.AddOracle) -> dict[str, Any]:
    ctx.require_operator("admit oracles")
    ctx.open_account(op.oracle, "oracle")
    return {"oracle": op.oracle}


def advance_round(ctx: Context, op: m.AdvanceRound) -> dict[str, Any]:
    ctx.require_operator("advance the round")
    ctx.reach_round(op.round)
    return {"round": ctx.current_round()}


# --- money ---------------------------------------------------------------------------------


def deposit(ctx: Context, op: m.Deposit) -> dict[str, Any]:
    ctx.require_operator("deposit")
    ctx.role_of(op.account)
    _move(ctx, WORLD, avail(op.account), op.amount)
    return {}


def withdraw(ctx: Context, op: m.Withdraw) -> dict[str, Any]:
    _move(ctx, avail(ctx.signer), WORLD, op.amount)
    return {}


def transfer(ctx: Context, op: m.Transfer) -> dict[str, Any]:
    ctx.role_of(op.to)
    _move(ctx, avail(ctx.signer), avail(op.to), op.amount)
    return {}


def fund_pool(ctx: Context, op: m.FundPool) -> dict[str, Any]:
    _move(ctx, avail(ctx.signer), POOL, op.amount)
    return {}


# --- stakes --------------------------------------------------------------------------------


def _check_new_asset(ctx: Context, asset: str, stake: int) -> None:
    taken = ctx.tx.execute(select(s.assets.c.id).where(s.assets.c.id == asset)).first()
    if taken is not None:
        raise AlreadyExistsError(f"asset {asset!r} exists")
    # Request and asset ids share one namespace: a round's market names both.
    if ctx.tx.execute(select(s.requests.c.id).where(s.requests.c.id == asset)).first():
        raise AlreadyExistsError(f"id {asset!r} is taken by a request")
    check_stake(stake, ctx.config.stake_bounds)


def _owned(ctx: Context, asset: str) -> str:
    owner, status = ctx.asset(asset)
    if owner != ctx.signer:
        raise UnauthorizedError(f"asset {asset!r} belongs to another account")
    return status


def add_asset(ctx: Context, op: m.AddAsset) -> dict[str, Any]:
    _check_new_asset(ctx, op.asset, op.stake)
    ctx.tx.execute(insert(s.assets).values(id=op.asset, owner=ctx.signer, status="active"))
    ctx.tx.create_books({stake_book(op.asset): "stake"})
    _move(ctx, avail(ctx.signer), stake_book(op.asset), op.stake)
    return {"asset": op.asset}


def stake(ctx: Context, op: m.Stake) -> dict[str, Any]:
    status = _owned(ctx, op.asset)
    balances = ctx.tx.lock_books([avail(ctx.signer), stake_book(op.asset)])
    status = ctx.asset(op.asset)[1]  # re-read under the lock: settlement may have removed it
    if status != "active":
        raise AssetNotActiveError(f"asset {op.asset!r} is {status}")
    highest = ctx.config.stake_bounds[1]
    if balances[stake_book(op.asset)] + op.amount > highest:
        raise StakeAboveCapError(
            f"asset {op.asset!r} holds {balances[stake_book(op.asset)]}; adding {op.amount} "
            f"would take it above the stake cap {highest}"
        )
    ctx.post({avail(ctx.signer): -op.amount, stake_book(op.asset): op.amount}, balances)
    return {}


def _in_open_task(ctx: Context, asset: str) -> bool:
    open_tasks = (
        select(s.task_assets.c.asset)
        .join(
            s.tasks,
            (s.tasks.c.round == s.task_assets.c.round) & (s.tasks.c.task == s.task_assets.c.task),
        )
        .where(s.task_assets.c.asset == asset, s.tasks.c.status == "open")
    )
    return bool(ctx.tx.execute(select(exists(open_tasks))).scalar())


def unstake(ctx: Context, op: m.Unstake) -> dict[str, Any]:
    """Stake goes to the owner's unbonding book and can be released after the delay.

    An active asset keeps at least the minimum stake, or unstakes everything and retires
    (not while it runs an open task: its stake answers for that task). A removed asset
    may take out whatever it has left."""
    _owned(ctx, op.asset)
    book = stake_book(op.asset)
    balances = ctx.tx.lock_books([book, unbond(ctx.signer)])
    status = ctx.asset(op.asset)[1]
    remaining = balances[book] - op.amount
    if remaining < 0:
        raise InsufficientFundsError(f"asset {op.asset!r} has {balances[book]} staked")
    if status == "active":
        lowest = ctx.config.stake_bounds[0]
        if 0 < remaining < lowest:
            raise StakeBelowMinimumError(
                f"{remaining} would stay staked, below the minimum {lowest}; "
                "unstake everything to retire the asset"
            )
        if remaining == 0:
            if _in_open_task(ctx, op.asset):
                raise StakeLockedError(f"asset {op.asset!r} runs an open task")
            ctx.set_asset_status(op.asset, "retired")
    release_round = ctx.current_round() + ctx.config.unstake_delay_rounds
    ctx.tx.execute(
        insert(s.unbondings).values(
            owner=ctx.signer, asset=op.asset, amount=op.amount, release_round=release_round
        )
    )
    ctx.post({book: -op.amount, unbond(ctx.signer): op.amount}, balances)
    return {"release_round": release_round}


def release(ctx: Context, op: m.Release) -> dict[str, Any]:
    balances = ctx.tx.lock_books([unbond(ctx.signer), avail(ctx.signer)])
    now = ctx.current_round()
    pending = (s.unbondings.c.owner == ctx.signer) & s.unbondings.c.released_entry.is_(None)
    matured = pending & (s.unbondings.c.release_round <= now)
    amount = ctx.tx.execute(
        select(func.coalesce(func.sum(s.unbondings.c.amount), 0)).where(matured)
    )
    amount = int(amount.scalar_one())
    if amount == 0:
        raise StakeLockedError(f"nothing has matured by round {now}")
    ctx.tx.execute(update(s.unbondings).where(matured).values(released_entry=ctx.entry_id))
    ctx.post({unbond(ctx.signer): -amount, avail(ctx.signer): amount}, balances)
    return {"released": amount}


def replace_asset(ctx: Context, op: m.ReplaceAsset) -> dict[str, Any]:
    _owned(ctx, op.old)
    _check_new_asset(ctx, op.new, op.stake)
    ctx.tx.execute(insert(s.assets).values(id=op.new, owner=ctx.signer, status="active"))
    ctx.tx.create_books({stake_book(op.new): "stake"})
    old, new, own = stake_book(op.old), stake_book(op.new), avail(ctx.signer)
    balances = ctx.tx.lock_books([old, new, own])
    status = ctx.asset(op.old)[1]
    if status != "removed":
        raise AssetNotActiveError(f"only a removed asset can be replaced; {op.old!r} is {status}")
    carried = balances[old]
    ctx.set_asset_status(op.old, "replaced")
    ctx.post({old: -carried, new: op.stake, own: carried - op.stake}, balances)
    return {"carried": carried}


HANDLERS: dict[str, Handler] = {
    m.OpenAccount.name: open_account,
    m.AddOracle.name: add_oracle,
    m.AdvanceRound.name: advance_round,
    m.Deposit.name: deposit,
    m.Withdraw.name: withdraw,
    m.Transfer.name: transfer,
    m.FundPool.name: fund_pool,
    m.AddAsset.name: add_asset,
    m.Stake.name: stake,
    m.Unstake.name: unstake,
    m.Release.name: release,
    m.ReplaceAsset.name: replace_asset,
}
