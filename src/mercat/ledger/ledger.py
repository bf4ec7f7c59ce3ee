"""The ledger: accepts signed messages, keeps balances, answers questions.

    ledger = Ledger.init("sqlite:///market.db", LedgerConfig(operator=op_key.public, rule=...))
    receipt = ledger.submit(Signer(op_key).sign(Deposit(account=alice, amount=1_000)))
    ledger.available(alice), ledger.stake_of("gpu-1"), ledger.pool()

`submit` is the one write path. In order, before anything is written: the payload must
parse (MalformedMessageError), its signature verify (BadSignatureError), embedded oracle
reports verify; then, in one transaction: the signer must have an account
(UnknownAccountError; `open_account` instead needs a fresh key), a settlement of an already
settled task returns at once (idempotence), the (signer, nonce) must be new
(ReplayedNonceError), and the operation's own checks run. Any error rolls everything back.

One `Ledger` per process: an engine must not cross a fork. Threads may share one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, inspect, literal, select
from sqlalchemy.exc import DatabaseError, IntegrityError

from mercat.errors import (
    AlreadyExistsError,
    LedgerNotInitializedError,
    ReplayedNonceError,
    UnknownAccountError,
    UnknownAssetError,
    UnknownBookError,
    UnknownTaskError,
)
from mercat.identity import verify
from mercat.ledger import messages as m
from mercat.ledger import schema as s
from mercat.ledger.config import LedgerConfig
from mercat.ledger.context import (
    POOL,
    WORLD,
    Context,
    avail,
    escrow_book,
    stake_book,
    unbond,
)
from mercat.ledger.migrate import SCHEMA_REVISION, current_revision, upgrade
from mercat.ledger.operations import HANDLERS
from mercat.ledger.settlement import open_task, report, settle, task_status
from mercat.ledger.store import (
    Txn,
    make_engine,
    missing_sqlite_file,
    run_in_transaction,
    safe_url,
    unavailable,
)
from mercat.ledger.verify import VerifyReport, verify_ledger
from mercat.oracle.economics import SettledTask

_ALL_HANDLERS = {
    **HANDLERS,
    m.OpenTask.name: open_task,
    m.Report.name: report,
    m.Settle.name: settle,
}


@dataclass(frozen=True)
class Receipt:
    """What `submit` did: the journal entry it appended (for an idempotent re-settlement,
    the entry that settled the task the first time), and whether this call applied it."""

    entry_id: int | None
    op: str
    applied: bool
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetInfo:
    id: str
    owner: str
    status: str
    stake: int


@dataclass(frozen=True)
class JournalEntry:
    id: int
    op: str
    signer: str
    nonce: int
    postings: tuple[tuple[str, int], ...]


class Ledger:
    """A ledger store opened by URL (`sqlite:///file.db`, `postgresql+psycopg://...`)."""

    def __init__(self, url: str, *, durable: bool = True) -> None:
        self.url = url
        if missing_sqlite_file(url):  # SQLite would create an empty file: a typo leaves litter
            raise LedgerNotInitializedError(
                f"no ledger at {safe_url(url)}; run `mercat ledger init`"
            )
        self.engine = make_engine(url, durable=durable)
        try:
            present = inspect(self.engine).has_table("ledger_meta")
        except DatabaseError as exc:  # unreachable server, or a file that is no database
            self.engine.dispose()
            raise unavailable(url, exc) from None
        if not present:
            raise LedgerNotInitializedError(
                f"no ledger at {safe_url(url)}; run `mercat ledger init`"
            )
        revision = current_revision(self.engine)
        if revision != SCHEMA_REVISION:
            raise LedgerNotInitializedError(
                f"ledger schema at revision {revision}, this mercat needs {SCHEMA_REVISION}; "
                "run `mercat ledger init` to upgrade"
            )
        with self.engine.connect() as connection:
            text = connection.execute(select(s.meta.c.config)).scalar()
        if text is None:
            raise LedgerNotInitializedError(f"ledger at {safe_url(url)} has no configuration")
        self.config = LedgerConfig.from_json(text)

    @classmethod
    def init(cls, url: str, config: LedgerConfig, *, durable: bool = True) -> Ledger:
        """Create (or upgrade) the schema and store `config`; refuses a configured store.

        `durable=False`: see `mercat.ledger.store.make_engine` (SQLite only)."""
        engine = make_engine(url, durable=durable)
        try:
            try:
                upgrade(engine)
            except DatabaseError as exc:
                raise unavailable(url, exc) from None

            def configure(tx: Txn) -> None:
                if tx.execute(select(s.meta.c.id)).first() is not None:
                    raise AlreadyExistsError(f"a ledger is already initialised at {safe_url(url)}")
                tx.execute(insert(s.meta).values(id=1, config=config.to_json(), round=0))
                tx.execute(insert(s.accounts).values(key=config.operator, role="operator"))
                tx.create_books(
                    {
                        WORLD: "world",
                        POOL: "pool",
                        avail(config.operator): "avail",
                        unbond(config.operator): "unbond",
                    }
                )

            run_in_transaction(engine, configure)
        finally:
            engine.dispose()
        return cls(url, durable=durable)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the write path ---------------------------------------------------------------------

    def submit(self, message: m.SignedMessage) -> Receipt:
        """Apply one signed message, all or nothing (see the module docstring)."""
        envelope = m.parse(message)
        verify(envelope.signer, message.payload, message.signature)
        op = envelope.op
        for signed in getattr(op, "reports", ()) + (
            (op.report,) if isinstance(op, m.Report) else ()
        ):
            signed.verify()

        def work(tx: Txn) -> Receipt:
            role = tx.execute(
                select(s.accounts.c.role).where(s.accounts.c.key == envelope.signer)
            ).scalar()
            if role is None and not isinstance(op, m.OpenAccount):
                raise UnknownAccountError(f"no account {envelope.signer[:16]}…")
            if isinstance(op, m.Settle):
                status = task_status(tx, op.round, op.task)
                if status is None:
                    raise UnknownTaskError(f"no task ({op.round}, {op.task!r})")
                if status[0] == "settled":
                    return Receipt(status[1], op.name, applied=False)
            used = tx.execute(
                select(s.entries.c.id).where(
                    s.entries.c.signer == envelope.signer, s.entries.c.nonce == envelope.nonce
                )
            ).first()
            if used is not None:
                raise ReplayedNonceError(
                    f"nonce {envelope.nonce} of {envelope.signer[:16]}… was used by entry {used.id}"
                )
            entry_id = tx.append_entry(
                op.name,
                envelope.signer,
                envelope.nonce,
                message.payload.decode(),
                message.signature.hex(),
            )
            ctx = Context(tx, self.config, envelope.signer, role, entry_id)
            result = _ALL_HANDLERS[op.name](ctx, op)
            return Receipt(entry_id, op.name, applied=True, result=result)

        try:
            return run_in_transaction(self.engine, work)
        except IntegrityError as exc:
            # Two writers raced past the checks above; the database's constraints decided.
            if "uq_entries_signer_nonce" in str(exc) or "entries.signer" in str(exc):
                raise ReplayedNonceError(f"nonce {envelope.nonce} already used") from None
            raise AlreadyExistsError(f"{op.name}: an id it creates was taken meanwhile") from None

    # --- reading ----------------------------------------------------------------------------

    def _scalar(self, query: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def balance(self, book: str, *, must_exist: bool = False) -> int:
        """The balance of a book by name: 0 for a book that does not exist, or, with
        `must_exist`, UnknownBookError (the node's `GET /ledger/balance` answers 404)."""
        value = self._scalar(select(s.books.c.balance).where(s.books.c.name == book))
        if value is None and must_exist:
            raise UnknownBookError(f"no book {book[:80]!r} on this ledger")
        return int(value or 0)

    def available(self, account: str) -> int:
        return self.balance(avail(account))

    def unbonding(self, account: str) -> int:
        return self.balance(unbond(account))

    def stake_of(self, asset: str) -> int:
        return self.balance(stake_book(asset))

    def escrowed(self, request: str) -> int:
        return self.balance(escrow_book(request))

    def pool(self) -> int:
        return self.balance(POOL)

    def supply(self) -> int:
        """Tokens in circulation: everything deposited and not withdrawn."""
        return -self.balance(WORLD)

    def round(self) -> int:
        return int(self._scalar(select(s.meta.c.round)))

    def books(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(s.books.c.name, s.books.c.balance))
            return {name: int(balance) for name, balance in rows}

    def accounts(self) -> list[tuple[str, str, int]]:
        """(key, role, spendable balance) of every account."""
        query = (
            select(s.accounts.c.key, s.accounts.c.role, s.books.c.balance)
            .join(s.books, s.books.c.name == literal("avail:").concat(s.accounts.c.key))
            .order_by(s.accounts.c.role, s.accounts.c.key)
        )
        with self.engine.connect() as connection:
            return [(str(k), str(r), int(b)) for k, r, b in connection.execute(query)]

    def assets(self) -> list[AssetInfo]:
        query = (
            select(s.assets.c.id, s.assets.c.owner, s.assets.c.status, s.books.c.balance)
            .join(s.books, s.books.c.name == literal("stake:").concat(s.assets.c.id))
            .order_by(s.assets.c.id)
        )
        with self.engine.connect() as connection:
            return [AssetInfo(a, o, st, int(b)) for a, o, st, b in connection.execute(query)]

    def requests(self) -> list[tuple[str, str]]:
        """(request id, owner key) of every request opened on the ledger, by id."""
        query = select(s.requests.c.id, s.requests.c.owner).order_by(s.requests.c.id)
        with self.engine.connect() as connection:
            return [(str(r), str(o)) for r, o in connection.execute(query)]

    def asset(self, asset: str) -> AssetInfo:
        for info in self.assets():
            if info.id == asset:
                return info
        raise UnknownAssetError(f"no asset {asset!r}")

    def journal(self, limit: int | None = None, after: int = 0) -> list[JournalEntry]:
        """Entries with id > `after`, oldest first, each with its postings."""
        query = select(s.entries).where(s.entries.c.id > after).order_by(s.entries.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            if not rows:
                return []
            postings = connection.execute(
                select(s.postings.c.entry_id, s.postings.c.book, s.postings.c.amount)
                .where(s.postings.c.entry_id.between(rows[0].id, rows[-1].id))
                .order_by(s.postings.c.id)
            ).all()
        by_entry: dict[int, list[tuple[str, int]]] = {}
        for entry_id, book, amount in postings:
            by_entry.setdefault(entry_id, []).append((book, int(amount)))
        return [
            JournalEntry(r.id, r.op, r.signer, int(r.nonce), tuple(by_entry.get(r.id, ())))
            for r in rows
        ]

    def settled_tasks(self) -> list[SettledTask]:
        """Every settled task with its payments and report count (for eq. 2-3)."""
        with self.engine.connect() as connection:
            tasks = connection.execute(
                select(s.tasks, s.requests.c.owner)
                .join(s.requests, s.requests.c.id == s.tasks.c.request)
                .where(s.tasks.c.status == "settled")
                .order_by(s.tasks.c.round, s.tasks.c.task)
            ).all()
            members = connection.execute(
                select(s.task_assets.c.round, s.task_assets.c.task, s.task_assets.c.payout,
                       s.assets.c.owner)
                .join(s.assets, s.assets.c.id == s.task_assets.c.asset)
                .order_by(s.task_assets.c.position)
            ).all()  # fmt: skip
            counted = connection.execute(
                select(s.oracle_reports.c.round, s.oracle_reports.c.task, func.count()).group_by(
                    s.oracle_reports.c.round, s.oracle_reports.c.task
                )
            )
            reports = {(int(r), str(t)): int(n) for r, t, n in counted}
        by_task: dict[tuple[int, str], list[tuple[str, int]]] = {}
        for r, t, payout, owner in members:
            by_task.setdefault((int(r), str(t)), []).append((str(owner), int(payout)))
        records = []
        for row in tasks:
            key = (int(row.round), str(row.task))
            owners = by_task.get(key, [])
            payouts: dict[str, int] = {}
            if row.success:
                for owner, payout in owners:
                    payouts[owner] = payouts.get(owner, 0) + payout
            records.append(
                SettledTask(
                    round=key[0], task=key[1], requester=str(row.owner), success=bool(row.success),
                    sla_met=bool(row.sla_met), latency_ms=int(row.latency_ms),
                    price=sum(p for _, p in owners), payouts=payouts,
                    providers=tuple(dict.fromkeys(o for o, _ in owners)),
                    reports=reports.get(key, 0),
                )
            )  # fmt: skip
        return records

    def verify(self, *, signatures: bool = True) -> VerifyReport:
        """Recompute every balance from the journal; LedgerIntegrityError on any problem."""
        return verify_ledger(self.engine, signatures=signatures)
