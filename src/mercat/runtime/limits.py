"""The ranges every book stays in, checked by the SQL ledger and the in-memory book alike.

**Balances.** Every balance is an exact integer of base units: every book but `world` in
[0, 2^62), `world` in (-2^62, 0], so the supply (minus `world`) is below 2^62 too. Since
the books sum to zero and none but `world` is negative, a supply below 2^62 already keeps
every other book below it; the check on each book is the same rule applied where it is
cheapest to state, and it keeps a 64-bit column (SQLite turns an overflowing integer into
a float, PostgreSQL refuses it mid-transaction) far from its limit: the sum of two
balances never reaches 2^63. A posting that would leave the range is refused
(`BalanceOverflowError`) before anything is written; in practice only a deposit can.

**Stakes.** An active asset's stake lies in [`lowest`, `highest`]: at least the ledger's
minimum stake and the rule's clamp floor, at most the clamp cap (Coll-Rep and Coll-SR clamp
stakes to [S0/1000, S0]). The contracts (`chain/contracts/Market.vy`) hold the same rule:
`register_asset` and `replace_asset` need a stake in that range, `add_stake` refuses to go
above the cap. A stake outside it would be clamped by the first settlement anyway (the
excess to the pool, or the shortfall from it), so it is refused when it is offered
(`StakeBelowMinimumError`, `StakeAboveCapError`) instead of being taken and moved later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from mercat.errors import (
    BalanceOverflowError,
    InsufficientFundsError,
    LedgerIntegrityError,
    StakeAboveCapError,
    StakeBelowMinimumError,
)
from mercat.runtime.accounts import WORLD
from mercat.runtime.terms import MAX_INT

MAX_BALANCE = MAX_INT - 1
"""The largest balance a book may hold (2^62 - 1); `world` goes down to -MAX_BALANCE."""


def check_postings(balance: Callable[[str], int], moves: Mapping[str, int]) -> None:
    """Refuse postings {book: signed amount} that do not sum to zero (LedgerIntegrityError),
    would take a book other than `world` below zero (InsufficientFundsError), or would take
    any book out of its range (BalanceOverflowError); `balance(book)` is the book's balance
    now. Writes nothing."""
    if sum(moves.values()) != 0:
        raise LedgerIntegrityError(f"unbalanced postings {dict(moves)!r}")
    for book, amount in moves.items():
        after = balance(book) + amount
        if not 0 <= after <= MAX_BALANCE or book == WORLD:
            _check_outside(book, after - amount, amount)


def _check_outside(book: str, before: int, amount: int) -> None:
    """A posting to `world`, or one that leaves [0, 2^62): refused, except `world` in
    [-MAX_BALANCE, 0]."""
    after = before + amount
    if book == WORLD:
        if after < -MAX_BALANCE:
            raise BalanceOverflowError(
                f"the supply would reach {-after} base units; it must stay below 2^62 "
                f"({MAX_BALANCE + 1})"
            )
        if after > 0:  # more withdrawn than deposited: only a corrupted book gets here
            raise LedgerIntegrityError(f"{WORLD} would hold {after} > 0")
    elif after < 0:
        raise InsufficientFundsError(f"{book} holds {before}, cannot pay {-amount}")
    else:
        raise BalanceOverflowError(
            f"{book} would hold {after} base units; a balance must stay below 2^62"
        )


class _StakeRule(Protocol):
    stake_floor: int | None
    stake_cap: int | None


def stake_bounds(rule: _StakeRule, min_stake: int) -> tuple[int, int]:
    """(lowest, highest) stake of an active asset (module docstring)."""
    lowest = max(min_stake, rule.stake_floor or 0)
    highest = MAX_BALANCE if rule.stake_cap is None else rule.stake_cap
    return lowest, highest


def check_stake(stake: int, bounds: tuple[int, int], what: str = "stake") -> None:
    """Refuse a stake an active asset may not hold: below the bounds (StakeBelowMinimumError)
    or above them (StakeAboveCapError)."""
    lowest, highest = bounds
    if stake < lowest:
        raise StakeBelowMinimumError(f"{what} {stake} is below the minimum stake {lowest}")
    if stake > highest:
        raise StakeAboveCapError(f"{what} {stake} is above the stake cap {highest}")
