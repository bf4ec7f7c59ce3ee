"""The market contracts as a book of the round pipeline (`mercat.runtime.round.Book`).

`ChainBook` runs the same rounds as the in-memory book (`mercat.runtime.memory.MemoryBook`)
and the SQL ledger, with the money rule enforced by the contract (`contracts/Market.vy`)
instead of `mercat.runtime.money`; the parity tests hold the three equal, balance by
balance. Participants are named by plain strings, as in the in-memory book; each name gets
a chain account, and `books()` reports balances under the names of `mercat.runtime.accounts`
(`avail:<name>`, `stake:<asset>`, `escrow:<request>`, `hold:<round>:<task>`, `pool`,
`world`), so two books compare name by name.

What the chain holds and what this book keeps beside it:

- on chain: every balance, stake, escrow and hold, asset and request statuses, the fields
  of offers and request terms the checks need, a digest of each owner's canonical JSON,
  and each open task's commitment;
- here: the offers and request terms themselves (what `state` shows a round; each one's
  digest is checked against the chain's when it is read), the terms of the tasks opened
  (a settlement repeats them, the contract checks them against its commitment), and the
  map from names to accounts.

Settlement: without oracles the operator (the contract's authority) settles on each
attestation's verdict, as the in-memory book does. With `oracles` (public keys of
`mercat.oracle` reports, as for the in-memory book), each attestation's signed reports are
tallied here first (`mercat.oracle.quorum.tally`: a batch without a quorum is refused
before anything is sent), then each oracle's chain account reports its verdicts to the
quorum contract, which decides, and the operator asks the quorum to settle.

A round's tasks open in transactions of at most `MAX_BATCH` (32) tasks binding at most
`MAX_CALL_SERVERS` (128) distinct assets, and settle in chunks of `MAX_BATCH`; a larger
round takes several transactions, each all or nothing, and the servers' asks are checked
per transaction (as the in-memory book checks them per call).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mercat.chain import encoding
from mercat.chain.backend import ChainBackend
from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import (
    MAX_BATCH,
    MAX_CALL_SERVERS,
    ChainMarket,
    Settlement,
    TxResult,
    Verdict,
)
from mercat.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    LedgerIntegrityError,
    UnknownAccountError,
    UnknownTaskError,
)
from mercat.incentives.integer_rule import IntegerRule
from mercat.oracle.quorum import QuorumRule, tally
from mercat.runtime.accounts import (
    POOL,
    WORLD,
    avail,
    escrow_book,
    hold_book,
    stake_book,
    unbond,
)
from mercat.runtime.attest import Attestation
from mercat.runtime.money import AssetEffect, TaskSettlement
from mercat.runtime.records import MarginHolder, RequestRecord, TaskRecord
from mercat.runtime.snapshot import AssetView, BookState
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from mercat.untrusted import shown

_CLOSED = "closed"
_GONE = ("removed", "retired", "replaced")  # statuses an asset never leaves


class ChainBook:
    """The round pipeline's book on the market contracts (module docstring)."""

    def __init__(
        self,
        rule: IntegerRule,
        *,
        backend: ChainBackend | None = None,
        unit: int = 10**6,
        operator: str = "operator",
        min_stake: int | None = None,
        oracles: Iterable[str] = (),
        quorum: int = 1,
        unstake_delay_rounds: int = 10,
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
        publics = tuple(dict.fromkeys(oracles))
        self.quorum = QuorumRule(quorum)
        self.market = ChainMarket.deploy(
            backend or BoaBackend(),
            rule,
            min_stake=self.min_stake,
            unstake_delay_rounds=unstake_delay_rounds,
            oracles=len(publics),
            threshold=quorum if publics else None,
        )
        # An oracle's public key (what its reports are signed with) -> its chain account.
        self.oracles: dict[str, str] = dict(zip(publics, self.market.oracles, strict=True))
        self.addresses: dict[str, str] = {operator: self.market.admin}
        self.offers: dict[str, Offer] = {}  # the current offer of each asset, first-offer order
        self.owners: dict[str, str] = {}  # asset -> owner name
        self.requests: dict[str, RequestRecord] = {}  # posting order, as posted
        self.open_requests: dict[str, None] = {}  # not known to be closed, posting order
        self.tasks: dict[tuple[int, str], TaskRecord] = {}  # every task opened
        self._gone: set[str] = set()  # assets out of the market for good

    # --- participants ----------------------------------------------------------------------

    def _address(self, account: str) -> str:
        try:
            return self.addresses[account]
        except KeyError:
            raise UnknownAccountError(f"no account {shown(account)}") from None

    def open_account(self, account: str) -> None:
        if account in self.addresses:
            raise AlreadyExistsError(f"account {shown(account)} exists")
        self.addresses[account] = self.market.new_account()

    def deposit(self, account: str, amount: int) -> None:
        """The operator's on-ramp: `amount` new tokens into `account` (mint + deposit)."""
        self.market.fund(self._address(account), amount)

    def transfer(self, sender: str, receiver: str, amount: int) -> None:
        self.market.transfer(self._address(sender), self._address(receiver), amount)

    def fund_pool(self, account: str, amount: int) -> None:
        self.market.fund_pool(self._address(account), amount)

    def add_asset(self, owner: str, asset: str, stake: int, offer: Offer | None = None) -> None:
        """Register an asset with its stake (and, optionally, its owner's offer)."""
        address = self._address(owner)
        if offer is not None and offer.asset != asset:
            raise InvalidParameterError(f"the offer names {offer.asset!r}, not {shown(asset)}")
        self.market.register_asset(address, asset, stake)
        self.owners[asset] = owner
        if offer is not None:
            self.post_offer(owner, offer)

    def withdraw(self, account: str, amount: int) -> None:
        """Free balance out of the market, into the account's wallet."""
        self.market.withdraw(self._address(account), amount)

    def unstake(self, owner: str, asset: str, amount: int) -> None:
        """Stake into the owner's unbonding, released `unstake_delay_rounds` later."""
        self.market.unstake(self._address(owner), asset, amount)

    def release(self, owner: str) -> int:
        """Matured unbonding back to the free balance; returns the amount."""
        result = self.market.release(self._address(owner))
        return sum(e.args["amount"] for e in result.named("Released"))

    def replace_asset(self, owner: str, old: str, new: str, stake: int) -> None:
        """A removed asset's stake carried over to a new asset staked at `stake`."""
        self.market.replace_asset(self._address(owner), old, new, stake)
        self.owners[new] = owner

    def advance_round(self, round_: int) -> None:
        self.market.advance_round(round_)

    def post_offer(self, owner: str, offer: Offer) -> None:
        """The owner's (new) standing offer for its asset."""
        self.market.post_offer(self._address(owner), offer)
        self.offers[offer.asset] = offer

    def post_request(self, owner: str, terms: RequestTerms) -> None:
        """Post a request and escrow its `max_price`."""
        self.market.post_request(self._address(owner), terms)
        self.requests[terms.request] = RequestRecord(terms.request, owner, terms, "open")
        self.open_requests[terms.request] = None

    def withdraw_request(self, signer: str, request: str) -> int:
        """Close an open request (its owner or the operator may); returns the refund."""
        result = self.market.withdraw_request(self._address(signer), request)
        self.open_requests.pop(request, None)
        return sum(e.args["refunded"] for e in result.named("RequestClosed"))

    # --- the round -------------------------------------------------------------------------

    def _checked_offer(self, asset: str, digest: bytes) -> Offer:
        offer = self.offers[asset]
        if encoding.digest(offer.to_wire()) != digest:
            raise LedgerIntegrityError(f"the chain holds another offer for {asset!r}")
        return offer

    def state(self, round_: int) -> BookState:
        """Active offered assets (first-offer order) and open requests not expired by
        `round_` (posting order), read from the chain."""
        views = []
        for asset in self.offers:
            if asset in self._gone:
                continue
            chain = self.market.asset(asset)
            if chain.status in _GONE:
                self._gone.add(asset)
                continue
            offer = self._checked_offer(asset, chain.offer_digest)
            views.append(AssetView(asset, self.owners[asset], chain.stake, offer))
        requests = []
        for request in list(self.open_requests):
            record = self._request_record(request)
            if record.status != "open":
                if record.status == _CLOSED:
                    self.open_requests.pop(request)
                continue
            if record.terms.expires >= round_:
                requests.append(record)
        return BookState(round_, self.unit, tuple(views), tuple(requests))

    def _request_record(self, request: str) -> RequestRecord:
        posted = self.requests[request]
        chain = self.market.request(request)
        if chain.digest != encoding.digest(posted.terms.to_wire()):
            raise LedgerIntegrityError(f"the chain holds other terms for request {request!r}")
        return RequestRecord(
            request,
            posted.owner,
            posted.terms,
            chain.status,  # type: ignore[arg-type]
            None if chain.status == "open" else chain.round,
            chain.served,
            chain.open_tasks,
        )

    def expire(self, round_: int) -> list[str]:
        """Withdraw (as the operator) every open request whose last round is behind
        `round_`; their escrows go back to their owners."""
        gone = []
        for request in list(self.open_requests):
            if self.requests[request].terms.expires >= round_:
                continue
            if self.market.request(request).status == "open":
                self.withdraw_request(self.operator, request)
                gone.append(request)
        return gone

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder = "operator"
    ) -> list[TaskRecord]:
        opened = []
        for chunk in _open_chunks(tasks):
            self.market.open_tasks(round_, chunk, margin_to)
            # Recorded as each transaction opens them: a later chunk that is refused leaves
            # these open on chain, and settling them needs their terms.
            for terms in chunk:
                record = TaskRecord(round_, terms, margin_to)
                self.tasks[(round_, terms.task)] = record
                opened.append(record)
        return opened

    def settle(self, round_: int, attestations: Sequence[Attestation]) -> list[TaskSettlement]:
        """Settle a batch of tasks, in chunks of `MAX_BATCH`. With oracles, every
        attestation's reports must reach the quorum (checked before anything is sent)."""
        items = []
        for attestation in attestations:
            record = self.tasks.get((round_, attestation.task))
            if record is None:
                raise UnknownTaskError(f"no task ({round_}, {attestation.task!r})")
            items.append(Settlement(record.terms, record.margin_to, attestation.paid))
        if self.oracles:
            self._report(round_, attestations)
        done: list[TaskSettlement] = []
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start : start + MAX_BATCH]
            result = self.market.settle_tasks(round_, chunk)
            done += self._settlements(round_, chunk, result)
        return done

    def _report(self, round_: int, attestations: Sequence[Attestation]) -> None:
        """Tally every attestation's reports (refusing the batch on any error), then send
        each oracle's verdicts on the tasks the quorum has not decided yet."""
        by_oracle: dict[str, list[Verdict]] = {public: [] for public in self.oracles}
        for attestation in attestations:
            tally(attestation.reports, self.oracles, self.quorum)
            if self.market.verdict(round_, attestation.task)[0]:
                continue  # decided by an earlier call whose settlement was refused
            for signed in attestation.reports:
                r = signed.report
                by_oracle[signed.oracle].append(Verdict(r.task, r.success, r.sla_met, r.digest))
        for public, verdicts in by_oracle.items():
            for start in range(0, len(verdicts), MAX_BATCH):
                self.market.report(
                    self.oracles[public], round_, verdicts[start : start + MAX_BATCH]
                )

    def _settlements(
        self, round_: int, items: Sequence[Settlement], result: TxResult
    ) -> list[TaskSettlement]:
        """What the contract's events say each settlement did."""
        name = self.market.name_of
        effects: dict[str, list[AssetEffect]] = {}
        removed = {
            (name(e.args["task"]), name(e.args["asset"])) for e in result.named("AssetRemoved")
        }
        for e in result.named("StakeUpdated"):
            task, asset = name(e.args["task"]), name(e.args["asset"])
            effect = AssetEffect(
                asset,
                self.owners[asset],
                e.args["before"],
                e.args["after"],
                (task, asset) in removed,
            )
            effects.setdefault(task, []).append(effect)
        settled = {name(e.args["task"]): e.args for e in result.named("TaskSettled")}
        for e in result.named("RequestClosed"):
            self.open_requests.pop(name(e.args["request"]), None)
        out = []
        for item in items:
            terms = item.task
            args = settled[terms.task]
            payouts: dict[str, int] = {}
            if args["paid"]:
                for asset, payout in zip(terms.assets, terms.payouts, strict=True):
                    if payout:
                        owner = self.owners[asset]
                        payouts[owner] = payouts.get(owner, 0) + payout
            out.append(
                TaskSettlement(
                    round=round_,
                    task=terms.task,
                    request=terms.request,
                    paid=args["paid"],
                    charge=args["charge"],
                    payouts=payouts,
                    margin=args["margin"],
                    effects=tuple(effects.get(terms.task, ())),
                    refunded=args["refunded"],
                )
            )
        return out

    # --- reads -----------------------------------------------------------------------------

    def books(self) -> dict[str, int]:
        """Every balance under `mercat.runtime.accounts`'s names, read from the chain:
        `world` is minus the tokens inside the market (what came in through deposits and
        has not been withdrawn)."""
        m = self.market
        out = {WORLD: -m.held(), POOL: m.reward_pool()}
        for name, address in self.addresses.items():
            out[avail(name)] = m.balance(address)
            out[unbond(name)] = m.unbonding(address)
        for asset in self.owners:
            out[stake_book(asset)] = m.stake(asset)
        for request in self.requests:
            out[escrow_book(request)] = m.escrow_of(request)
        for round_, task in m.tasks:  # the open ones
            out[hold_book(round_, task)] = m.task(round_, task).held
        return out

    def statuses(self) -> dict[str, str]:
        """Every registered asset's status (the ledger's names), read from the chain."""
        return {asset: self.market.asset(asset).status for asset in self.owners}

    def balance(self, book: str) -> int:
        return self.books().get(book, 0)

    def available(self, account: str) -> int:
        return self.market.balance(self._address(account))

    def stake_of(self, asset: str) -> int:
        return self.market.stake(asset)

    def pool(self) -> int:
        return self.market.reward_pool()

    def supply(self) -> int:
        return self.market.held()

    def verify(self) -> None:
        """Every token the market holds is in exactly one place (LedgerIntegrityError)."""
        gap = self.market.conservation_gap()
        if gap:
            raise LedgerIntegrityError(f"the market holds {gap} tokens no place accounts for")


def _open_chunks(tasks: Sequence[TaskTerms]) -> list[Sequence[TaskTerms]]:
    """`tasks` cut, in order, into runs of at most `MAX_BATCH` tasks that bind at most
    `MAX_CALL_SERVERS` distinct assets (one run for an empty list: the contract refuses it
    as the other books do)."""
    chunks: list[Sequence[TaskTerms]] = []
    start, assets = 0, set()
    for i, task in enumerate(tasks):
        more = assets | set(task.assets)
        if i > start and (i - start == MAX_BATCH or len(more) > MAX_CALL_SERVERS):
            chunks.append(tasks[start:i])
            start, more = i, set(task.assets)
        assets = more
    chunks.append(tasks[start:])
    return chunks


def nonzero(books: Mapping[str, int]) -> dict[str, int]:
    """The books that hold something: how two books' balances compare (one book may list
    an empty book the other never opened)."""
    return {name: balance for name, balance in books.items() if balance}
