"""The operations of a market scenario, as plain data over account *names*.

One scenario replays anywhere: on the contracts (`mercat.chain.scenario.run_on_chain`), on
the Python reference (`mercat.chain.reference`) and on the SQL ledger (the parity test).
Amounts are integers in base units; asset and request ids are integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


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
