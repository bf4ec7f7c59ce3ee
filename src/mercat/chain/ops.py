"""The operations of a market scenario, as plain data over participant *names*.

One scenario replays on any book that speaks the in-memory book's language plus the stake
life cycle (`mercat.chain.reference.ReferenceBook`, `mercat.chain.book.ChainBook`, the SQL
ledger through an adapter): `mercat.chain.scenario.apply` sends one operation to a book.
Amounts are integers in base units; assets, requests and tasks are named by strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mercat.runtime.terms import Offer, RequestTerms, TaskTerms


@dataclass(frozen=True)
class Op:
    """Base of all operations. `expect`: name of the error class the book must raise (a
    book's error is an instance of it), None when the operation must succeed."""

    expect: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class OpenAccount(Op):
    account: str


@dataclass(frozen=True)
class Fund(Op):
    """Tokens from outside into `account`'s free balance (the operator's on-ramp)."""

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
class Register(Op):
    """A new asset with its stake (no offer yet)."""

    owner: str
    asset: str
    stake: int


@dataclass(frozen=True)
class PostOffer(Op):
    owner: str
    offer: Offer


@dataclass(frozen=True)
class Unstake(Op):
    owner: str
    asset: str
    amount: int


@dataclass(frozen=True)
class Release(Op):
    account: str


@dataclass(frozen=True)
class ReplaceAsset(Op):
    owner: str
    old: str
    new: str
    stake: int


@dataclass(frozen=True)
class AdvanceRound(Op):
    round: int


@dataclass(frozen=True)
class PostRequest(Op):
    owner: str
    terms: RequestTerms


@dataclass(frozen=True)
class WithdrawRequest(Op):
    """The request's owner (or the operator) withdraws an open request."""

    signer: str
    request: str


@dataclass(frozen=True)
class OpenTasks(Op):
    """The operator opens tasks of a round, all or none."""

    round: int
    tasks: tuple[TaskTerms, ...]
    margin_to: str = "operator"


@dataclass(frozen=True)
class TaskVerdict:
    task: str
    success: bool
    sla_met: bool


@dataclass(frozen=True)
class SettleTasks(Op):
    """The authority settles tasks of a round on these verdicts, all or none."""

    round: int
    verdicts: tuple[TaskVerdict, ...]


def account_names(ops: Sequence[Op]) -> list[str]:
    """The accounts a scenario opens, in order."""
    return [op.account for op in ops if isinstance(op, OpenAccount)]


def asset_names(ops: Sequence[Op]) -> list[str]:
    """Every asset a scenario registers (directly or as a replacement), in order."""
    names: dict[str, None] = {}
    for op in ops:
        if isinstance(op, Register):
            names.setdefault(op.asset)
        elif isinstance(op, ReplaceAsset):
            names.setdefault(op.new)
    return list(names)
