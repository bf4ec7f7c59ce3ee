"""The audit of authority: replay what owners signed and check every task against it.

`verify` already recomputes every balance from the journal; this module checks, from the
signed payloads alone, that nobody bound an asset or charged an escrow beyond what its owner
signed, and that the tables still say what was signed:

- operator-only operations (deposit, add_oracle, advance_round, open_tasks) were signed by
  the operator;
- an offer was signed by the asset's owner (owners come from the signed add_asset and
  replace_asset messages);
- every open_tasks message passes the money rule's checks (`mercat.runtime.money.open_tasks`)
  against the offers and request terms signed before it: assets offered by their owners and
  paid at least their asks, capacities, capabilities, replicas, named assets, expiry, and
  charges within each request's signed `max_price`;
- the `offers`, `requests` and `tasks` tables hold exactly the signed offers, terms and task
  terms (a row changed behind the journal's back is reported).

Messages signed before the ledger bound them to terms (domain `mercat/ledger/1`) are checked
for their signatures only. Asset statuses change with settlements (removal), which this
replay does not re-run: the balance audit covers what settlements moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from mercat.errors import MalformedMessageError, MercatError, UnknownAssetError, UnknownRequestError
from mercat.ledger import messages as m
from mercat.runtime import money
from mercat.runtime.records import (
    NO_USAGE,
    AssetRecord,
    AssetStatus,
    RequestRecord,
    TaskRecord,
    Usage,
)
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

OPERATOR_ONLY = {"deposit", "add_oracle", "advance_round", "open_tasks"}
_PLENTY = 2**62  # what the replay lets a margin holder spend: subsidies are its own money


@dataclass(frozen=True)
class SignedRow:
    """One journal entry as `verify` read it."""

    id: int
    op: str
    signer: str
    payload: str


class ReplayTxn:
    """A `BookTxn` rebuilt from signed messages only (module docstring)."""

    def __init__(self, operator: str) -> None:
        self.operator = operator
        self.owners: dict[str, str] = {}
        self.offers: dict[str, Offer] = {}
        self.cids: dict[str, str] = {}
        self.requests: dict[str, RequestRecord] = {}
        self.escrow: dict[str, int] = {}
        self.usages: dict[tuple[int, str], Usage] = {}
        self.tasks: dict[tuple[int, str], TaskRecord] = {}

    def balance(self, book: str) -> int:
        if book.startswith("escrow:"):
            return self.escrow.get(book[len("escrow:") :], 0)
        return _PLENTY

    def post(self, moves: Mapping[str, int]) -> None:
        for book, amount in moves.items():
            if book.startswith("escrow:") and amount < 0:
                request = book[len("escrow:") :]
                self.escrow[request] = self.escrow.get(request, 0) + amount

    def asset(self, asset: str) -> AssetRecord:
        if asset not in self.owners:
            raise UnknownAssetError(f"no asset {asset!r}")
        return AssetRecord(asset, self.owners[asset], "active", self.offers.get(asset))

    def set_asset_status(self, asset: str, status: AssetStatus) -> None:
        pass

    def resolve(self, reference: str) -> str | None:
        return reference if reference in self.owners else self.cids.get(reference)

    def request(self, request: str) -> RequestRecord:
        try:
            return self.requests[request]
        except KeyError:
            raise UnknownRequestError(f"no request {request!r}") from None

    def put_request(self, record: RequestRecord) -> None:
        self.requests[record.request] = record

    def usage(self, round_: int, asset: str) -> Usage:
        return self.usages.get((round_, asset), NO_USAGE)

    def put_usage(self, round_: int, asset: str, usage: Usage) -> None:
        self.usages[(round_, asset)] = usage

    def task(self, round_: int, task: str) -> TaskRecord | None:
        return self.tasks.get((round_, task))

    def put_task(self, record: TaskRecord) -> None:
        self.tasks[(record.round, record.terms.task)] = record


def check_authority(
    rows: Iterable[SignedRow],
    operator: str,
    stored_offers: Mapping[str, str],
    stored_terms: Mapping[str, str | None],
    stored_tasks: Mapping[tuple[int, str], TaskTerms],
) -> list[str]:
    """Problems found replaying the journal's signed messages (module docstring).

    `stored_*` are what the tables hold: offers and request terms as canonical JSON text, and
    task terms by (round, task)."""
    replay = ReplayTxn(operator)
    problems: list[str] = []
    for row in rows:
        try:
            data = json.loads(row.payload)
        except (ValueError, TypeError):
            data = None
        if not isinstance(data, dict):
            problems.append(f"entry {row.id}: payload is not a JSON object")
            continue
        if data.get("domain") != m.DOMAIN:
            # Signed before messages carried terms: checked for their signatures only, but
            # the assets they created still belong to their signers.
            body = data.get("body") if isinstance(data, dict) else None
            if isinstance(body, dict) and row.op in ("add_asset", "replace_asset"):
                asset = body.get("asset" if row.op == "add_asset" else "new")
                if isinstance(asset, str):
                    replay.owners[asset] = row.signer
            continue
        if row.op in OPERATOR_ONLY and row.signer != operator:
            problems.append(f"entry {row.id}: {row.op} signed by a key that is not the operator")
            continue
        try:
            op = m.build(data.get("op"), data.get("body"))
        except MalformedMessageError as exc:
            problems.append(f"entry {row.id}: {exc}")
            continue
        problems += [f"entry {row.id}: {p}" for p in _replay(replay, row, op)]
    for asset, offer in replay.offers.items():
        if stored_offers.get(asset) != _canonical(offer.to_wire()):
            problems.append(f"the offer of asset {asset!r} differs from the one its owner signed")
    for request, record in replay.requests.items():
        if stored_terms.get(request) != _canonical(record.terms.to_wire()):
            problems.append(f"the terms of request {request!r} differ from the signed ones")
    for key, record in replay.tasks.items():
        if stored_tasks.get(key) != record.terms:
            problems.append(f"task {key} differs from what the operator signed")
    return problems


def _replay(replay: ReplayTxn, row: SignedRow, op: m.Op) -> list[str]:
    if isinstance(op, m.AddAsset):
        replay.owners[op.asset] = row.signer
    elif isinstance(op, m.ReplaceAsset):
        replay.owners[op.new] = row.signer
    elif isinstance(op, m.PostOffer):
        if replay.owners.get(op.offer.asset) != row.signer:
            return [f"offer for asset {op.offer.asset!r} not signed by its owner"]
        old = replay.offers.get(op.offer.asset)
        if old is not None and old.cid is not None:
            replay.cids.pop(old.cid, None)
        replay.offers[op.offer.asset] = op.offer
        if op.offer.cid is not None:
            replay.cids[op.offer.cid] = op.offer.asset
    elif isinstance(op, m.PostRequest):
        terms: RequestTerms = op.terms
        replay.requests[terms.request] = RequestRecord(terms.request, row.signer, terms, "open")
        replay.escrow[terms.request] = terms.max_price
    elif isinstance(op, m.Refund):
        record = replay.requests.get(op.request)
        if record is not None:
            replay.requests[op.request] = replace(record, status="closed")
    elif isinstance(op, m.OpenTasks):
        try:
            money.open_tasks(replay, op.round, op.tasks, op.margin_to)  # type: ignore[arg-type]
        except MercatError as exc:
            return [f"open_tasks of round {op.round} goes beyond what owners signed: {exc}"]
    elif isinstance(op, m.Settle | m.SettleTasks):
        # A request whose tasks have all settled cannot be served again: its record is kept
        # as the replay left it ("assigned" to its round), which the checks already refuse.
        pass
    return []


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
