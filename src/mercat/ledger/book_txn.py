"""The money rule's `BookTxn` over one database transaction of the SQL ledger.

`mercat.runtime.money` opens and settles tasks against a small interface; here it reads the
ledger's rows and keeps every change in memory until `flush` writes them in a few bulk
statements (one INSERT of postings, one UPDATE of balances, ...). A batch of thousands of
tasks is read with a handful of `SELECT ... IN` queries (`prefetch_*`) and written with a
handful of `executemany`s: that, not the arithmetic, is what settling at thousands of tasks
per second takes.

Locking (PostgreSQL): books are locked `FOR UPDATE`, in name order when prefetched together;
a book first read later is locked then. Two transactions that still meet in a cycle are
rolled back by the database and retried from the start (`mercat.ledger.store`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update

from mercat.errors import UnknownAssetError, UnknownRequestError
from mercat.ledger import schema as s
from mercat.ledger.bulk import insert_rows, select_in, update_rows
from mercat.ledger.store import Txn
from mercat.runtime.limits import check_postings
from mercat.runtime.records import (
    NO_USAGE,
    AssetRecord,
    AssetStatus,
    RequestRecord,
    TaskRecord,
    Usage,
)
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

_CHUNK = 4000  # names per IN (...) list: well under SQLite's limit on bound parameters


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _book_kind(name: str) -> str:
    return name.split(":", 1)[0] if ":" in name else name


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parse_terms(text: str | None) -> RequestTerms | None:
    return None if text is None else RequestTerms.from_wire(json.loads(text))


def parse_offer(text: str | None) -> Offer | None:
    return None if text is None else Offer.from_wire(json.loads(text))


class SqlBookTxn:
    """A `mercat.runtime.records.BookTxn` over one ledger transaction (module docstring)."""

    def __init__(self, tx: Txn, operator: str, entry_id: int) -> None:
        self.tx = tx
        self.operator = operator
        self.entry_id = entry_id
        self._balances: dict[str, int] = {}
        self._absent: set[str] = set()  # books read that do not exist (yet)
        self._moves: dict[str, int] = defaultdict(int)
        self._assets: dict[str, AssetRecord | None] = {}
        self._asset_status: dict[str, AssetStatus] = {}
        self._requests: dict[str, RequestRecord | None] = {}
        self._requests_changed: dict[str, RequestRecord] = {}
        self._usage: dict[tuple[int, str], Usage] = {}
        self._usage_stored: set[tuple[int, str]] = set()
        self._usage_changed: dict[tuple[int, str], Usage] = {}
        self._tasks: dict[tuple[int, str], TaskRecord | None] = {}
        self._tasks_new: list[TaskRecord] = []
        self._tasks_settled: list[tuple[Any, ...]] = []
        self._effects: list[tuple[Any, ...]] = []
        self._cids: dict[str, str | None] = {}

    # --- books ---------------------------------------------------------------------------

    def prefetch_books(self, names: Iterable[str]) -> None:
        wanted = sorted({n for n in names if n not in self._balances and n not in self._absent})
        for chunk in _chunks(wanted):
            # in name order: PostgreSQL locks the rows in it (one global order, no cycles)
            rows = select_in(
                self.tx, "SELECT name, balance FROM books WHERE {in} ORDER BY name", "name", chunk,
                lock=self.tx.locking,
            )  # fmt: skip
            found = dict(rows)
            for name in chunk:
                if name in found:
                    self._balances[name] = int(found[name])
                else:
                    self._absent.add(name)

    def balance(self, book: str) -> int:
        known = self._balances.get(book)  # the money rule asks ~25 times per task
        if known is not None:
            return known
        if book not in self._absent:
            self.prefetch_books([book])
        return self._balances.get(book, 0)

    def post(self, moves: Mapping[str, int]) -> None:
        balances = self._balances
        if not all(book in balances for book in moves):  # a settlement prefetched them all
            self.prefetch_books(moves)
        check_postings(self.balance, moves)
        for book, amount in moves.items():
            if amount:
                balances[book] = self.balance(book) + amount
                self._moves[book] += amount

    # --- assets --------------------------------------------------------------------------

    def prefetch_assets(self, ids: Iterable[str]) -> None:
        wanted = sorted({a for a in ids if a not in self._assets})
        for chunk in _chunks(wanted):
            rows = self.tx.execute(
                select(s.assets.c.id, s.assets.c.owner, s.assets.c.status, s.offers.c.offer)
                .outerjoin(s.offers, s.offers.c.asset == s.assets.c.id)
                .where(s.assets.c.id.in_(chunk))
            ).all()
            for row in rows:
                self._assets[row.id] = AssetRecord(
                    row.id, row.owner, row.status, parse_offer(row.offer)
                )
            for asset in chunk:
                self._assets.setdefault(asset, None)

    def asset(self, asset: str) -> AssetRecord:
        if asset not in self._assets:
            self.prefetch_assets([asset])
        record = self._assets[asset]
        if record is None:
            raise UnknownAssetError(f"no asset {asset!r}")
        status = self._asset_status.get(asset)
        return record if status is None else record.with_status(status)

    def set_asset_status(self, asset: str, status: AssetStatus) -> None:
        self._asset_status[asset] = status

    def resolve(self, reference: str) -> str | None:
        if reference not in self._cids:
            self.prefetch_assets([reference])
            if self._assets.get(reference) is not None:
                self._cids[reference] = reference
            else:
                self._cids[reference] = self.tx.execute(
                    select(s.offers.c.asset).where(s.offers.c.cid == reference)
                ).scalar()
        return self._cids[reference]

    # --- requests ------------------------------------------------------------------------

    def prefetch_requests(self, ids: Iterable[str], *, terms: bool = True) -> None:
        """Load requests; `terms=False` skips parsing their terms (settling a task needs the
        owner and the count of open tasks, not the terms), and they read as None."""
        wanted = sorted({r for r in ids if r not in self._requests})
        for chunk in _chunks(wanted):
            if terms:
                query = select(s.requests).where(s.requests.c.id.in_(chunk))
                for row in self.tx.execute(query).all():
                    self._requests[row.id] = request_record(row)
            else:
                for rid, owner, status, round_, served, open_tasks in select_in(
                    self.tx, "SELECT id, owner, status, round, served, open_tasks FROM requests "
                    "WHERE {in}", "id", chunk,
                ):  # fmt: skip
                    self._requests[rid] = RequestRecord(
                        rid, owner, None, status,  # type: ignore[arg-type]
                        None if round_ is None else int(round_), int(served), int(open_tasks),
                    )  # fmt: skip
            for request in chunk:
                self._requests.setdefault(request, None)

    def request(self, request: str) -> RequestRecord:
        if request in self._requests_changed:
            return self._requests_changed[request]
        if request not in self._requests:
            self.prefetch_requests([request])
        record = self._requests[request]
        if record is None:
            raise UnknownRequestError(f"no request {request!r}")
        return record

    def put_request(self, record: RequestRecord) -> None:
        self._requests_changed[record.request] = record

    # --- usage ---------------------------------------------------------------------------

    def usage(self, round_: int, asset: str) -> Usage:
        key = (round_, asset)
        if key in self._usage_changed:
            return self._usage_changed[key]
        if key not in self._usage:
            row = self.tx.execute(
                select(s.round_usage.c.units).where(
                    s.round_usage.c.round == round_, s.round_usage.c.asset == asset
                )
            ).scalar()
            if row is None:
                self._usage[key] = NO_USAGE
            else:
                self._usage[key] = Usage(json.loads(row), True)
                self._usage_stored.add(key)
        return self._usage[key]

    def put_usage(self, round_: int, asset: str, usage: Usage) -> None:
        self.usage(round_, asset)  # learn whether a row exists
        self._usage_changed[(round_, asset)] = usage

    # --- tasks ---------------------------------------------------------------------------

    def prefetch_tasks(self, round_: int, tasks: Iterable[str]) -> None:
        wanted = sorted({t for t in tasks if (round_, t) not in self._tasks})
        for chunk in _chunks(wanted):
            rows = select_in(
                self.tx,
                "SELECT task, request, status, charge, fraction, margin_to FROM tasks "
                "WHERE round = ? AND {in}", "task", chunk, round_,
            )  # fmt: skip
            members: dict[str, list[tuple[str, int]]] = defaultdict(list)
            for task, asset, payout in select_in(
                self.tx,
                "SELECT task, asset, payout FROM task_assets WHERE round = ? AND {in} "
                "ORDER BY task, position", "task", chunk, round_,
            ):  # fmt: skip
                members[task].append((asset, int(payout)))
            for task, request, status, charge, fraction, margin_to in rows:
                parts = members.get(task, ())  # (asset, payout) pairs, in position order
                assets = tuple(a for a, _ in parts)
                payouts = tuple(p for _, p in parts)
                charge = sum(payouts) if charge is None else int(charge)
                terms = TaskTerms(task, request, assets, payouts, charge, int(fraction))
                self._tasks[(round_, task)] = TaskRecord(round_, terms, margin_to, status)
            for task in chunk:
                self._tasks.setdefault((round_, task), None)

    def task(self, round_: int, task: str) -> TaskRecord | None:
        key = (round_, task)
        if key not in self._tasks:
            self.prefetch_tasks(round_, [task])
        return self._tasks[key]

    def put_task(self, record: TaskRecord) -> None:
        key = (record.round, record.terms.task)
        previous = self._tasks.get(key)
        self._tasks[key] = record
        if previous is None:
            self._tasks_new.append(record)

    def record_settlement(
        self, round_: int, task: str, verdict: Any, effects: Iterable[Any]
    ) -> None:
        """What the tasks table keeps of a settlement: the verdict, and per asset its stake
        before and after and whether it was removed."""
        # rows as `flush` writes them: the values set, then the row's key
        self._tasks_settled.append(
            ("settled", self.entry_id, verdict.success, verdict.sla_met, verdict.latency_ms,
             verdict.digest, round_, task)
        )  # fmt: skip
        for position, effect in enumerate(effects):
            self._effects.append(
                (effect.stake_before, effect.stake_after, effect.removed, round_, task, position)
            )

    # --- writing -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every change of this transaction (postings, balances, rows)."""
        tx = self.tx
        created = sorted(b for b in self._moves if b in self._absent)
        insert_rows(
            tx, "books", ("name", "kind", "balance"), [(b, _book_kind(b), 0) for b in created]
        )
        moves = sorted((b, a) for b, a in self._moves.items() if a)
        insert_rows(
            tx,
            "postings",
            ("entry_id", "book", "amount"),
            [(self.entry_id, b, a) for b, a in moves],
        )
        update_rows(tx, "books", ("balance",), ("name",), [(a, b) for b, a in moves], add=True)
        if self._asset_status:
            tx.execute(
                update(s.assets)
                .where(s.assets.c.id == bindparam("a"))
                .values(status=bindparam("st")),
                [{"a": a, "st": st} for a, st in sorted(self._asset_status.items())],
            )
        update_rows(
            tx, "requests", ("status", "round", "served", "open_tasks"), ("id",),
            [(r.status, r.round, r.served, r.open_tasks, r.request)
             for r in self._requests_changed.values()],
        )  # fmt: skip
        self._flush_usage()
        self._flush_tasks()

    def _flush_usage(self) -> None:
        inserts, updates = [], []
        for (round_, asset), usage in self._usage_changed.items():
            row = {"r": round_, "a": asset, "u": canonical_json(dict(usage.units))}
            (updates if (round_, asset) in self._usage_stored else inserts).append(row)
        if inserts:
            self.tx.execute(
                insert(s.round_usage).values(
                    round=bindparam("r"), asset=bindparam("a"), units=bindparam("u")
                ),
                inserts,
            )
        if updates:
            self.tx.execute(
                update(s.round_usage)
                .where(
                    and_(s.round_usage.c.round == bindparam("r"),
                         s.round_usage.c.asset == bindparam("a"))
                )
                .values(units=bindparam("u")),
                updates,
            )  # fmt: skip

    def _flush_tasks(self) -> None:
        tx = self.tx
        insert_rows(
            tx, "tasks",
            ("round", "task", "request", "status", "opened_entry", "charge", "fraction",
             "margin_to"),
            [(r.round, r.terms.task, r.terms.request, "open", self.entry_id, r.terms.charge,
              r.terms.fraction, r.margin_to) for r in self._tasks_new],
        )  # fmt: skip
        insert_rows(
            tx, "task_assets", ("round", "task", "position", "asset", "payout"),
            [(r.round, r.terms.task, i, a, p)
             for r in self._tasks_new
             for i, (a, p) in enumerate(zip(r.terms.assets, r.terms.payouts, strict=True))],
        )  # fmt: skip
        update_rows(
            tx, "tasks", ("status", "settled_entry", "success", "sla_met", "latency_ms", "digest"),
            ("round", "task"), self._tasks_settled,
        )  # fmt: skip
        update_rows(
            tx, "task_assets", ("stake_before", "stake_after", "removed"),
            ("round", "task", "position"), self._effects,
        )  # fmt: skip


def request_record(row: Any, *, terms: bool = True) -> RequestRecord:
    """A `requests` row as the money rule's record (its terms parsed only if `terms`)."""
    return RequestRecord(
        request=row.id,
        owner=row.owner,
        terms=parse_terms(row.terms) if terms else None,  # type: ignore[arg-type]
        status=row.status,
        round=None if row.round is None else int(row.round),
        served=int(row.served),
        open_tasks=int(row.open_tasks),
    )
