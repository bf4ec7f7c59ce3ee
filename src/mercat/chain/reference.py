"""The market's rules in plain Python: the in-memory book plus the stake life cycle.

`ReferenceBook` is `mercat.runtime.memory.MemoryBook` (offers, requests, tasks and their
money through `mercat.runtime.money`, the code the SQL ledger runs too) with what the SQL
ledger and the contract add around it, restated from `mercat.ledger.operations`:

- `withdraw`: free balance out of the market;
- `unstake`: stake into the owner's unbonding (`unbond:<owner>`), released
  `unstake_delay_rounds` rounds later; an active asset keeps the minimum stake or unstakes
  everything and retires, not while a task is open on it; a removed asset may take out
  whatever it has left;
- `release`: matured unbonding back to the free balance;
- `replace_asset`: a removed asset's stake carried over to a new asset;
- the round clock: the highest round the operator (`advance_round`) or any opened or
  settled task has named;
- an offer only for an active asset.

Each refusal raises the error class the ledger raises and changes nothing, checked in the
ledger's (and the contract's) order. The scenario generator (`mercat.chain.scenario`) asks
it which operations a market must refuse; the parity tests hold the contract and the SQL
ledger to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    StakeBelowMinimumError,
    StakeLockedError,
    UnauthorizedError,
)
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime import money
from mercat.runtime.accounts import WORLD, avail, stake_book, unbond
from mercat.runtime.attest import Attestation
from mercat.runtime.memory import MemoryBook
from mercat.runtime.records import AssetRecord, AssetStatus, MarginHolder, TaskRecord
from mercat.runtime.terms import Offer, TaskTerms


class ReferenceBook(MemoryBook):
    """`MemoryBook` with the stake life cycle of the SQL ledger (module docstring)."""

    def __init__(
        self,
        rule: IntegerRule,
        *,
        unstake_delay_rounds: int = 10,
        oracles: Iterable[str] = (),
        **kw,  # type: ignore[no-untyped-def]
    ) -> None:
        super().__init__(rule, oracles=oracles, **kw)
        self.unstake_delay_rounds = unstake_delay_rounds
        self.unbonding: dict[str, list[tuple[int, int]]] = {}  # owner -> [(amount, round)]

    # --- checks ----------------------------------------------------------------------------

    def _owned(self, owner: str, asset: str) -> AssetRecord:
        record = self._asset(asset)
        if record.owner != owner:
            raise UnauthorizedError(f"asset {asset!r} belongs to another account")
        return record

    def _set_status(self, asset: str, status: AssetStatus) -> None:
        self.assets[asset] = replace(self.assets[asset], status=status)
        self._refresh_view(asset)

    def _in_open_task(self, asset: str) -> bool:
        return any(t.status == "open" and asset in t.terms.assets for t in self.tasks.values())

    # --- what the ledger adds ----------------------------------------------------------------

    def post_offer(self, owner: str, offer: Offer) -> None:
        record = self._owned(owner, offer.asset)
        if record.status != "active":
            raise AssetNotActiveError(f"asset {offer.asset!r} is {record.status}")
        super().post_offer(owner, offer)

    def withdraw(self, account: str, amount: int) -> None:
        self._account(account)
        self._post({avail(account): -amount, WORLD: amount})

    def advance_round(self, round_: int) -> None:
        self.round = max(self.round, round_)

    def unstake(self, owner: str, asset: str, amount: int) -> None:
        record = self._owned(owner, asset)
        stake = self.stake_of(asset)
        remaining = stake - amount
        if remaining < 0:
            raise InsufficientFundsError(f"asset {asset!r} has {stake} staked")
        if record.status == "active":
            if 0 < remaining < self.min_stake:
                raise StakeBelowMinimumError(f"{remaining} would stay staked")
            if remaining == 0:
                if self._in_open_task(asset):
                    raise StakeLockedError(f"asset {asset!r} runs an open task")
                self._set_status(asset, "retired")
        self._post({stake_book(asset): -amount, unbond(owner): amount})
        self.unbonding.setdefault(owner, []).append(
            (amount, self.round + self.unstake_delay_rounds)
        )
        self._refresh_view(asset)

    def release(self, owner: str) -> int:
        self._account(owner)
        queue = self.unbonding.get(owner, [])
        matured = sum(amount for amount, when in queue if when <= self.round)
        if matured == 0:
            raise StakeLockedError(f"nothing of {owner!r} has matured by round {self.round}")
        self.unbonding[owner] = [(amount, when) for amount, when in queue if when > self.round]
        self._post({unbond(owner): -matured, avail(owner): matured})
        return matured

    def replace_asset(self, owner: str, old: str, new: str, stake: int) -> None:
        record = self._owned(owner, old)
        if new in self.assets or new in self.requests:
            raise AlreadyExistsError(f"id {new!r} is taken")
        if stake < self.min_stake:
            raise StakeBelowMinimumError(f"stake {stake} is below the minimum {self.min_stake}")
        if record.status != "removed":
            raise AssetNotActiveError(f"only a removed asset can be replaced; {old!r} is "
                                      f"{record.status}")  # fmt: skip
        carried = self.stake_of(old)
        self._post(
            {stake_book(old): -carried, stake_book(new): stake, avail(owner): carried - stake}
        )
        self._set_status(old, "replaced")
        self.assets[new] = AssetRecord(new, owner, "active", None)

    # --- the round clock follows tasks -------------------------------------------------------

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder = "operator"
    ) -> list[TaskRecord]:
        opened = super().open_tasks(round_, tasks, margin_to)
        self.round = max(self.round, round_)
        return opened

    def settle(
        self, round_: int, attestations: Sequence[Attestation]
    ) -> list[money.TaskSettlement]:
        done = super().settle(round_, attestations)
        self.round = max(self.round, round_)
        return done

    # --- reads -------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return {asset: record.status for asset, record in self.assets.items()}
