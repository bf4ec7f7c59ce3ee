"""The in-memory book: the SQL ledger's rules without a database, for fast simulation.

It keeps the same balances under the same names (`mercat.runtime.accounts`) and opens and
settles tasks through the same money rule (`mercat.runtime.money`), so a simulation on it
and a market on the SQL ledger give the same balances and stakes for the same rounds (the
parity tests hold them equal). What it leaves out is what a simulation does not need:
signatures, nonces, the journal. Every change is all or nothing: a refused batch leaves the
book as it was (`_Txn` collects the changes and applies them only when the whole batch
passed).

Participants are named by plain strings (no keys); `operator` is the account that opens
tasks and receives a market-maker's margin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    InvalidParameterError,
    LedgerIntegrityError,
    UnauthorizedError,
    UnknownAccountError,
    UnknownAssetError,
    UnknownRequestError,
)
from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule
from mercat.oracle.quorum import QuorumRule, tally
from mercat.runtime import money
from mercat.runtime.accounts import POOL, WORLD, avail, escrow_book, stake_book
from mercat.runtime.attest import Attestation
from mercat.runtime.limits import MAX_BALANCE, check_postings, check_stake, stake_bounds
from mercat.runtime.records import (
    NO_USAGE,
    AssetRecord,
    AssetStatus,
    MarginHolder,
    RequestRecord,
    TaskRecord,
    Usage,
)
from mercat.runtime.snapshot import AssetView, BookState
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from mercat.untrusted import shown

_GONE = object()


class MemoryBook:
    """Balances, assets, requests and tasks in dictionaries (module docstring)."""

    def __init__(
        self,
        rule: IntegerRule,
        *,
        unit: int = 10**6,
        operator: str = "operator",
        min_stake: int | None = None,
        oracles: Iterable[str] = (),
        quorum: int = 1,
        keep_history: bool = True,
    ) -> None:
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 1:
            raise InvalidParameterError(f"unit must be a positive integer, got {shown(unit)}")
        self.rule = rule
        self.unit = unit
        self.operator = operator
        self.min_stake = rule.minimum_stake if min_stake is None else min_stake
        if self.min_stake < rule.minimum_stake:
            raise InvalidParameterError(
                f"min_stake {self.min_stake} is at the removal level; it must be at least "
                f"{rule.minimum_stake}"
            )
        # The contracts' stake rule: an active asset's stake stays in these bounds.
        self.stake_bounds = stake_bounds(rule, self.min_stake)
        if self.stake_bounds[0] > self.stake_bounds[1]:
            raise InvalidParameterError(
                f"no stake fits: the minimum {self.stake_bounds[0]} is above the stake cap "
                f"{self.stake_bounds[1]}"
            )
        self.oracles = frozenset(oracles)
        self.quorum = QuorumRule(quorum)
        self.round = 0
        self.balances: dict[str, int] = {WORLD: 0, POOL: 0, avail(operator): 0}
        self.roles: dict[str, str] = {operator: "operator"}
        self.assets: dict[str, AssetRecord] = {}
        self.requests: dict[str, RequestRecord] = {}  # posting order
        self.forgotten: set[str] = set()  # closed requests' ids, without keep_history
        self.open_requests: dict[str, RequestRecord] = {}  # the open ones, posting order
        self.tasks: dict[tuple[int, str], TaskRecord] = {}
        self.usage: dict[tuple[int, str], Usage] = {}
        self.cids: dict[str, str] = {}
        # What `state` shows of each active offered asset, kept up to date as stakes and
        # statuses change, so a round's snapshot does not rebuild every asset.
        self.views: dict[str, AssetView] = {}
        # keep_history=False forgets settled tasks, closed requests (their ids stay taken)
        # and past rounds' usage: a long simulation would otherwise keep every task and
        # request it ever ran, and Python's garbage collector walks all of them on each of
        # its full passes. A settled task or a closed request is then unknown.
        self.keep_history = keep_history

    # --- participants --------------------------------------------------------------------

    def open_account(self, account: str) -> None:
        if account in self.roles:
            raise AlreadyExistsError(f"account {shown(account)} exists")
        self.roles[account] = "user"
        self.balances[avail(account)] = 0

    def deposit(self, account: str, amount: int) -> None:
        """The operator's on-ramp: `amount` new tokens into `account` (the supply stays
        below 2^62, `mercat.runtime.limits`)."""
        self._account(account)
        self._post({WORLD: -_amount(amount), avail(account): amount})

    def transfer(self, sender: str, receiver: str, amount: int) -> None:
        """As on the ledger and the contract, a transfer to oneself needs the funds and
        changes nothing."""
        self._account(sender)
        self._account(receiver)
        if sender == receiver:
            if self.available(sender) < _amount(amount):
                raise InsufficientFundsError(
                    f"{avail(sender)} holds {self.available(sender)}, cannot pay {amount}"
                )
            return
        self._post({avail(sender): -_amount(amount), avail(receiver): amount})

    def fund_pool(self, account: str, amount: int) -> None:
        self._account(account)
        self._post({avail(account): -_amount(amount), POOL: amount})

    def add_asset(self, owner: str, asset: str, stake: int, offer: Offer | None = None) -> None:
        """Register an asset with its stake (and, optionally, its owner's offer)."""
        self._account(owner)
        if asset in self.assets or asset in self.requests or asset in self.forgotten:
            raise AlreadyExistsError(f"id {shown(asset)} is taken")
        check_stake(_amount(stake, "stake"), self.stake_bounds)
        if offer is not None and offer.asset != asset:
            raise InvalidParameterError(f"the offer names {offer.asset!r}, not {shown(asset)}")
        if offer is not None and offer.cid is not None and offer.cid in self.cids:
            # checked before anything is written: post_offer below would refuse it too late
            raise AlreadyExistsError(f"CID {offer.cid} is offered by another asset")
        self._post({avail(owner): -stake, stake_book(asset): stake})
        self.assets[asset] = AssetRecord(asset, owner, "active", None)
        if offer is not None:
            self.post_offer(owner, offer)

    def post_offer(self, owner: str, offer: Offer) -> None:
        """The owner's (new) standing offer for its asset."""
        record = self._asset(offer.asset)
        if record.owner != owner:
            raise UnauthorizedError(f"asset {offer.asset!r} belongs to another account")
        if record.status != "active":
            raise AssetNotActiveError(f"asset {offer.asset!r} is {record.status}")
        if offer.cid is not None and self.cids.get(offer.cid, offer.asset) != offer.asset:
            raise AlreadyExistsError(f"CID {offer.cid} is offered by another asset")
        if record.offer is not None and record.offer.cid is not None:
            self.cids.pop(record.offer.cid, None)
        if offer.cid is not None:
            self.cids[offer.cid] = offer.asset
        self.assets[offer.asset] = replace(record, offer=offer)
        self._refresh_view(offer.asset)

    def post_request(self, owner: str, terms: RequestTerms) -> None:
        """Post a request and escrow its `max_price`."""
        self._account(owner)
        if (
            terms.request in self.requests
            or terms.request in self.forgotten
            or terms.request in self.assets
        ):
            raise AlreadyExistsError(f"id {terms.request!r} is taken")
        self._post({avail(owner): -terms.max_price, escrow_book(terms.request): terms.max_price})
        record = RequestRecord(terms.request, owner, terms, "open")
        self.requests[terms.request] = record
        self.open_requests[terms.request] = record

    def add_oracles(self, keys: Iterable[Keypair]) -> None:
        """Admit oracles: from now on a settlement needs `quorum` of their signed reports."""
        self.oracles = self.oracles | {k.public for k in keys}

    def withdraw_request(self, signer: str, request: str) -> int:
        txn = _Txn(self)
        amount = money.withdraw_request(txn, request, signer)
        txn.commit()
        return amount

    # --- the round -----------------------------------------------------------------------

    def state(self, round_: int) -> BookState:
        requests = tuple(r for r in self.open_requests.values() if r.terms.expires >= round_)
        return BookState(round_, self.unit, tuple(self.views.values()), requests)

    def expire(self, round_: int) -> list[str]:
        """Close every open request whose last round is behind `round_` (escrow refunded)."""
        gone = [r.request for r in self.open_requests.values() if r.terms.expires < round_]
        for request in gone:
            self.withdraw_request(self.operator, request)
        return gone

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder = "operator"
    ) -> list[TaskRecord]:
        txn = _Txn(self)
        opened = money.open_tasks(txn, round_, tasks, margin_to)
        if not self.keep_history and round_ > self.round:
            self.usage.clear()  # usage matters within a round only
        self.round = max(self.round, round_)
        txn.commit()
        return opened

    def settle(
        self, round_: int, attestations: Sequence[Attestation]
    ) -> list[money.TaskSettlement]:
        """Settle a batch of tasks, all or nothing. With an oracle set, each attestation's
        reports must reach the quorum; without one the attested verdict is taken as is.
        The batch is settled at once (`money.settle_tasks`); `settle_per_task` is its
        reference twin."""
        verdicts = [(a.task, self._verdict(a)) for a in attestations]
        txn = _Txn(self)
        done = money.settle_tasks(txn, round_, verdicts, self.rule)
        txn.commit()
        return done

    def settle_per_task(
        self, round_: int, attestations: Sequence[Attestation]
    ) -> list[money.TaskSettlement]:
        """`settle`, one task after another through `money.settle_task` (each task's
        postings checked on their own): the readable reference the batch is held to."""
        txn = _Txn(self)
        done = []
        for attestation in attestations:
            paid = self._verdict(attestation)
            done.append(money.settle_task(txn, round_, attestation.task, paid, self.rule))
        txn.commit()
        return done

    def _verdict(self, attestation: Attestation) -> bool:
        if not self.oracles:
            return attestation.paid
        verdict = tally(attestation.reports, self.oracles, self.quorum)
        return verdict.success and verdict.sla_met

    # --- reads ---------------------------------------------------------------------------

    def balance(self, book: str) -> int:
        return self.balances.get(book, 0)

    def books(self) -> dict[str, int]:
        return dict(self.balances)

    def available(self, account: str) -> int:
        return self.balance(avail(account))

    def stake_of(self, asset: str) -> int:
        return self.balance(stake_book(asset))

    def pool(self) -> int:
        return self.balance(POOL)

    def usage_in(self, round_: int) -> dict[str, Usage]:
        """What the tasks opened in `round_` take of each server (for `runtime.views`)."""
        return {asset: u for (r, asset), u in self.usage.items() if r == round_}

    def supply(self) -> int:
        return -self.balance(WORLD)

    def verify(self) -> None:
        """Every balance an integer in its range (`mercat.runtime.limits`), books sum to zero
        and none but `world` is negative (LedgerIntegrityError)."""
        strange = [
            b for b, v in self.balances.items()
            if not isinstance(v, int) or isinstance(v, bool) or not -MAX_BALANCE <= v <= MAX_BALANCE
        ]  # fmt: skip
        if strange:
            raise LedgerIntegrityError(f"balances that are not integers below 2^62: {strange}")
        total = sum(self.balances.values())
        if total != 0:
            raise LedgerIntegrityError(f"books sum to {total}, not 0")
        negative = [b for b, v in self.balances.items() if v < 0 and b != WORLD]
        if negative:
            raise LedgerIntegrityError(f"negative books: {negative}")

    # --- internals -----------------------------------------------------------------------

    def _account(self, account: str) -> None:
        if account not in self.roles:
            raise UnknownAccountError(f"no account {shown(account)}")

    def _asset(self, asset: str) -> AssetRecord:
        try:
            return self.assets[asset]
        except KeyError:
            raise UnknownAssetError(f"no asset {shown(asset)}") from None

    def _post(self, moves: Mapping[str, int]) -> None:
        check_postings(self.balance, moves)
        for book, amount in moves.items():
            self.balances[book] = self.balances.get(book, 0) + amount

    def _refresh_view(self, asset: str) -> None:
        record = self.assets[asset]
        if record.status == "active" and record.offer is not None:
            stake = self.balances[stake_book(asset)]
            self.views[asset] = AssetView(asset, record.owner, stake, record.offer)
        else:
            self.views.pop(asset, None)


def _amount(value: object, what: str = "amount") -> int:
    """An amount a participant moves: an integer of base units in [0, 2^62)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_BALANCE:
        raise InvalidParameterError(
            f"{what} must be an integer of base units in [0, 2^62), got {shown(value)}"
        )
    return value


class _Txn:
    """A `BookTxn` over a `MemoryBook`: reads fall through to the book, writes stay here
    until `commit`."""

    def __init__(self, book: MemoryBook) -> None:
        self.book = book
        self.operator = book.operator
        self.balances: dict[str, int] = {}
        self.statuses: dict[str, AssetStatus] = {}
        self.requests: dict[str, RequestRecord] = {}
        self.usages: dict[tuple[int, str], Usage] = {}
        self.tasks: dict[tuple[int, str], TaskRecord] = {}

    def balance(self, book: str) -> int:
        if book in self.balances:
            return self.balances[book]
        return self.book.balances.get(book, 0)

    def post(self, moves: Mapping[str, int]) -> None:
        check_postings(self.balance, moves)
        for book, amount in moves.items():
            if amount:
                self.balances[book] = self.balance(book) + amount

    def asset(self, asset: str) -> AssetRecord:
        record = self.book._asset(asset)
        status = self.statuses.get(asset)
        return record if status is None else record.with_status(status)

    def set_asset_status(self, asset: str, status: AssetStatus) -> None:
        self.statuses[asset] = status

    def resolve(self, reference: str) -> str | None:
        if reference in self.book.assets:
            return reference
        return self.book.cids.get(reference)

    def request(self, request: str) -> RequestRecord:
        if request in self.requests:
            return self.requests[request]
        try:
            return self.book.requests[request]
        except KeyError:
            raise UnknownRequestError(f"no request {shown(request)}") from None

    def put_request(self, record: RequestRecord) -> None:
        self.requests[record.request] = record

    def usage(self, round_: int, asset: str) -> Usage:
        key = (round_, asset)
        if key in self.usages:
            return self.usages[key]
        return self.book.usage.get(key, NO_USAGE)

    def put_usage(self, round_: int, asset: str, usage: Usage) -> None:
        self.usages[(round_, asset)] = usage

    def task(self, round_: int, task: str) -> TaskRecord | None:
        key = (round_, task)
        if key in self.tasks:
            return self.tasks[key]
        return self.book.tasks.get(key)

    def put_task(self, record: TaskRecord) -> None:
        self.tasks[(record.round, record.terms.task)] = record

    def commit(self) -> None:
        book = self.book
        book.balances.update(self.balances)
        for asset, status in self.statuses.items():
            book.assets[asset] = book.assets[asset].with_status(status)
        touched = {b[len("stake:") :] for b in self.balances if b.startswith("stake:")}
        for asset in touched | set(self.statuses):
            if asset in book.assets:
                book._refresh_view(asset)
        for request, record in self.requests.items():
            if record.status == "closed" and not book.keep_history:
                book.requests.pop(request, None)
                book.forgotten.add(request)
            else:
                book.requests[request] = record
            if record.status == "open":
                book.open_requests[request] = record
            else:
                book.open_requests.pop(request, None)
        if book.keep_history:
            book.usage.update(self.usages)
            book.tasks.update(self.tasks)
        else:
            for key, usage in self.usages.items():
                if key[0] < book.round:
                    continue
                book.usage[key] = usage
            for key, record in self.tasks.items():
                if record.status == "settled":
                    book.tasks.pop(key, None)
                else:
                    book.tasks[key] = record
