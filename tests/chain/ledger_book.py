"""A minimal `mercat.runtime.round.Book` over the SQL ledger, for the parity tests.

Participants are plain names, as in the in-memory book; each name gets an Ed25519 key and
every call becomes a message signed by it (the operator's key for the operator's calls).
Settlement takes an attestation's verdict as it is, as the in-memory book without oracles
does: the adapter's one oracle signs a report with that verdict for this ledger, and the
ledger settles on it (quorum 1). Balances come back under `mercat.runtime.accounts`'s
names with keys turned back into names, so the three books compare name by name.

`TaskSettlement`s are rebuilt from what the ledger keeps: the per-asset stakes before and
after each settlement (`task_assets`), and the refund of a request that closed (its escrow
before the batch plus the charges of its failed tasks, which go back into the escrow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select

from mercat.errors import AlreadyExistsError
from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import (
    AddAsset,
    AddOracle,
    AdvanceRound,
    Deposit,
    FundPool,
    Ledger,
    LedgerConfig,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    Refund,
    Release,
    ReplaceAsset,
    SettleTasks,
    Signer,
    TaskReports,
    Transfer,
    Unstake,
    Withdraw,
)
from mercat.ledger import schema as s
from mercat.ledger.messages import MAX_TASKS, Op
from mercat.oracle import OracleReport, SignedReport
from mercat.runtime.accounts import avail, unbond
from mercat.runtime.attest import Attestation
from mercat.runtime.money import AssetEffect, TaskSettlement
from mercat.runtime.records import MarginHolder, TaskRecord
from mercat.runtime.snapshot import AssetView, BookState
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms


class LedgerBook:
    def __init__(
        self,
        url: str,
        rule: IntegerRule,
        *,
        unit: int = 10**6,
        operator: str = "operator",
        min_stake: int | None = None,
        unstake_delay_rounds: int = 10,
    ) -> None:
        self.unit = unit
        self.operator = operator
        operator_key, self.oracle = Keypair.generate(), Keypair.generate()
        config = LedgerConfig(
            operator=operator_key.public,
            rule=rule,
            min_stake=min_stake,
            unstake_delay_rounds=unstake_delay_rounds,
            quorum=1,
            unit=unit,
        )
        self.ledger = Ledger.init(url, config, durable=False)
        self.keys = {operator: operator_key}
        self.names = {operator_key.public: operator, self.oracle.public: "oracle"}
        self.offered: dict[str, None] = {}  # assets in first-offer order (the memory book's)
        self.terms: dict[tuple[int, str], TaskTerms] = {}
        self._submit(operator, AddOracle(oracle=self.oracle.public))

    def _submit(self, name: str, op: Op):
        return self.ledger.submit(Signer(self.keys[name], self.ledger.id).sign(op))

    # --- participants ----------------------------------------------------------------------

    def open_account(self, name: str) -> None:
        key = Keypair.generate()
        self.keys[name], self.names[key.public] = key, name
        self._submit(name, OpenAccount())

    def deposit(self, name: str, amount: int) -> None:
        self._submit(self.operator, Deposit(account=self.keys[name].public, amount=amount))

    def transfer(self, sender: str, receiver: str, amount: int) -> None:
        self._submit(sender, Transfer(to=self.keys[receiver].public, amount=amount))

    def fund_pool(self, name: str, amount: int) -> None:
        self._submit(name, FundPool(amount=amount))

    def add_asset(self, owner: str, asset: str, stake: int, offer: Offer | None = None) -> None:
        self._submit(owner, AddAsset(asset=asset, stake=stake))
        if offer is not None:
            self.post_offer(owner, offer)

    def withdraw(self, name: str, amount: int) -> None:
        self._submit(name, Withdraw(amount=amount))

    def unstake(self, owner: str, asset: str, amount: int) -> None:
        self._submit(owner, Unstake(asset=asset, amount=amount))

    def release(self, owner: str) -> int:
        return self._submit(owner, Release()).result["released"]

    def replace_asset(self, owner: str, old: str, new: str, stake: int) -> None:
        self._submit(owner, ReplaceAsset(old=old, new=new, stake=stake))

    def advance_round(self, round_: int) -> None:
        self._submit(self.operator, AdvanceRound(round=round_))

    def post_offer(self, owner: str, offer: Offer) -> None:
        self._submit(owner, PostOffer(offer=offer))
        self.offered.setdefault(offer.asset)

    def post_request(self, owner: str, terms: RequestTerms) -> None:
        self._submit(owner, PostRequest(terms=terms))

    def withdraw_request(self, signer: str, request: str) -> int:
        return self._submit(signer, Refund(request=request)).result["refunded"]

    # --- the round -------------------------------------------------------------------------

    def state(self, round_: int) -> BookState:
        offers = self.ledger.offers()
        assets = {info.id: info for info in self.ledger.assets()}
        views = tuple(
            AssetView(a, self.names[assets[a].owner], assets[a].stake, offers[a])
            for a in self.offered
            if assets[a].status == "active"
        )
        requests = tuple(
            replace(r, owner=self.names[r.owner])
            for r in self.ledger.request_records(status="open")
            if r.terms.expires >= round_
        )
        return BookState(round_, self.unit, views, requests)

    def expire(self, round_: int) -> list[str]:
        gone = [
            r.request
            for r in self.ledger.request_records(status="open")
            if r.terms.expires < round_
        ]
        for request in gone:
            self.withdraw_request(self.operator, request)
        return gone

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder = "operator"
    ) -> list[TaskRecord]:
        for start in range(0, max(len(tasks), 1), MAX_TASKS):
            chunk = tuple(tasks[start : start + MAX_TASKS])
            self._submit(self.operator, OpenTasks(round=round_, tasks=chunk, margin_to=margin_to))
        for t in tasks:
            self.terms[(round_, t.task)] = t
        return [TaskRecord(round_, t, margin_to) for t in tasks]

    def settle(self, round_: int, attestations: Sequence[Attestation]) -> list[TaskSettlement]:
        """Settle on the attestations' verdicts. A batch whose tasks are all settled is
        refused as the other books refuse it (the ledger answers it "already applied")."""
        terms = [self.terms.get((round_, a.task)) for a in attestations]
        escrows = {t.request: self.ledger.escrowed(t.request) for t in terms if t is not None}
        items = []
        for a in attestations:
            report = OracleReport(
                round_, a.task, a.success, a.sla_met, a.latency_ms, a.digest, self.ledger.id
            )
            items.append(TaskReports(a.task, (SignedReport.sign(report, self.oracle),)))
        for start in range(0, len(items), MAX_TASKS):
            chunk = tuple(items[start : start + MAX_TASKS])
            receipt = self._submit(self.operator, SettleTasks(round=round_, settlements=chunk))
            if not receipt.applied:
                raise AlreadyExistsError(f"the tasks of round {round_} are settled")
        return self._settlements(round_, attestations, terms, escrows)

    def _settlements(self, round_, attestations, terms, escrows) -> list[TaskSettlement]:
        owners = {info.id: self.names[info.owner] for info in self.ledger.assets()}
        rows = s.task_assets.c
        with self.ledger.engine.connect() as connection:
            effects = connection.execute(
                select(rows.task, rows.asset, rows.stake_before, rows.stake_after, rows.removed)
                .where(rows.round == round_, rows.task.in_([t.task for t in terms]))
                .order_by(rows.task, rows.position)
            ).all()
        by_task: dict[str, list[AssetEffect]] = {}
        for task, asset, before, after, removed in effects:
            effect = AssetEffect(asset, owners[asset], int(before), int(after), bool(removed))
            by_task.setdefault(task, []).append(effect)
        closed = {r.request for r in self.ledger.request_records(status="closed")}
        last = {t.request: t.task for t in terms}  # the task that closed each request
        out = []
        for a, t in zip(attestations, terms, strict=True):
            if not a.paid:
                escrows[t.request] += t.charge
            payouts: dict[str, int] = {}
            if a.paid:
                for asset, payout in zip(t.assets, t.payouts, strict=True):
                    if payout:
                        payouts[owners[asset]] = payouts.get(owners[asset], 0) + payout
            closing = t.request in closed and last[t.request] == t.task
            out.append(
                TaskSettlement(
                    round=round_,
                    task=t.task,
                    request=t.request,
                    paid=a.paid,
                    charge=t.charge if a.paid else 0,
                    payouts=payouts,
                    margin=t.margin if a.paid else 0,
                    effects=tuple(by_task.get(t.task, ())),
                    refunded=escrows[t.request] if closing else 0,
                )
            )
        return out

    # --- reads -----------------------------------------------------------------------------

    def books(self) -> dict[str, int]:
        out = {}
        for book, balance in self.ledger.books().items():
            kind, _, rest = book.partition(":")
            if kind == "avail":
                book = avail(self.names[rest])
            elif kind == "unbond":
                book = unbond(self.names[rest])
            out[book] = balance
        return out

    def statuses(self) -> dict[str, str]:
        return {info.id: info.status for info in self.ledger.assets()}

    def pool(self) -> int:
        return self.ledger.pool()

    def verify(self) -> None:
        self.ledger.verify()
