"""The ledger: accepts signed messages, keeps balances, answers questions.

    ledger = Ledger.init("sqlite:///market.db", LedgerConfig(operator=op_key.public, rule=...))
    receipt = ledger.submit(Signer(op_key).sign(Deposit(account=alice, amount=1_000)))
    ledger.available(alice), ledger.stake_of("gpu-1"), ledger.pool()

`submit` is the one write path. In order, before anything is written: the payload must
parse (MalformedMessageError), name this ledger (WrongLedgerError) and not be expired or
valid for too long (ExpiredMessageError), its signature verify (BadSignatureError),
embedded oracle reports verify; then, in one transaction: the signer must have an account
(UnknownAccountError; `open_account` instead needs a fresh key), a settlement whose tasks
are all settled returns at once (idempotence), the (signer, nonce) must be new
(ReplayedNonceError), and the operation's own checks run. Any error rolls everything back.

A batch's oracle reports (64 or more) are verified *while* the transaction reads and
computes, by the report worker process or by threads (`mercat.ledger.report_signatures`);
the transaction commits only once every report verified, and a forged report is the error
raised whatever the transaction found, so what is written and what is refused are as if
the reports had been checked first. While a large message is applied the garbage collector
runs less often (`mercat.runtime.collector`, as for a simulation's rounds).

One `Ledger` per process: an engine must not cross a fork. Threads may share one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, insert, inspect, literal, select
from sqlalchemy.exc import DatabaseError, IntegrityError

from mercat.errors import (
    AlreadyExistsError,
    ExpiredMessageError,
    InvalidParameterError,
    LedgerNotInitializedError,
    LedgerUnavailableError,
    ReplayedNonceError,
    UnknownAccountError,
    UnknownAssetError,
    UnknownBookError,
    UnknownTaskError,
    WrongLedgerError,
)
from mercat.identity import verify
from mercat.ledger import messages as m
from mercat.ledger import schema as s
from mercat.ledger.book_txn import parse_offer, request_record
from mercat.ledger.bulk import select_in
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
from mercat.ledger.report_signatures import ReportCheck
from mercat.ledger.settlement import (
    open_tasks,
    post_offer,
    post_request,
    refund,
    report,
    settle,
    settle_tasks,
    task_status,
)
from mercat.ledger.store import (
    Txn,
    in_byte_order,
    make_engine,
    missing_sqlite_file,
    run_in_transaction,
    safe_url,
    sqlite_path,
    sqlite_tables,
    store_url,
    unavailable,
)
from mercat.ledger.verify import VerifyReport, stored_int, verify_ledger
from mercat.oracle.economics import SettledTask
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime.collector import fewer_collections
from mercat.runtime.records import RequestRecord
from mercat.runtime.terms import MAX_INT, Offer
from mercat.untrusted import shown


def _n(value: object, what: str) -> int:
    """A count, round or amount read back from the store: an integer in [0, 2^62)."""
    return stored_int(value, what, 0, MAX_INT - 1)


#: A message of at least this many bytes (some 40 tasks' reports) is applied with fewer
#: garbage collections.
LARGE_MESSAGE = 16 * 1024


def _int_in(value: object, lowest: int, highest: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lowest <= value <= highest


def _reports_of(op: m.Op) -> list[SignedReport]:
    if isinstance(op, m.Report):
        return [op.report]
    if isinstance(op, m.Settle):
        return list(op.reports)
    if isinstance(op, m.SettleTasks):
        return [r for item in op.settlements for r in item.reports]
    return []


def _settled_entry_if_all(tx: Txn, op: m.SettleTasks) -> int | None:
    """The entry that settled every task of the batch, if all are settled (a resend)."""
    names = [item.task for item in op.settlements]
    entries = set()
    for start in range(0, len(names), 4000):
        chunk = names[start : start + 4000]
        rows = select_in(
            tx, "SELECT status, settled_entry FROM tasks WHERE round = ? AND {in}", "task",
            chunk, op.round,
        )  # fmt: skip
        if len(rows) < len(chunk):
            return None
        for status, entry in rows:
            if status != "settled":
                return None
            entries.add(int(entry))
    return min(entries) if entries else None


_ALL_HANDLERS = {
    **HANDLERS,
    m.PostOffer.name: post_offer,
    m.PostRequest.name: post_request,
    m.Refund.name: refund,
    m.OpenTasks.name: open_tasks,
    m.Report.name: report,
    m.Settle.name: settle,
    m.SettleTasks.name: settle_tasks,
}

#: The most entries one `journal` call returns (a page; `after` reads the next one).
MAX_JOURNAL_PAGE = 100_000


# --- opening and creating stores ---------------------------------------------------------

#: Tables a ledger store holds: the ledger's own and Alembic's record of its revision.
LEDGER_TABLES = frozenset(s.metadata.tables) | {"alembic_version"}


def _configuration(engine: Any, url: str) -> LedgerConfig:
    """The configuration of the ledger behind `engine`; LedgerNotInitializedError if the
    store holds none (or an older schema), LedgerUnavailableError if it cannot be read."""
    try:
        present = inspect(engine).has_table("ledger_meta")
        if not present:
            raise LedgerNotInitializedError(
                f"no ledger at {safe_url(url)}; run `mercat ledger init`"
            )
        revision = current_revision(engine)
        if revision != SCHEMA_REVISION:
            raise LedgerNotInitializedError(
                f"ledger schema at revision {revision}, this mercat needs {SCHEMA_REVISION}; "
                "run `mercat ledger init` to upgrade"
            )
        with engine.connect() as connection:
            text = connection.execute(select(s.meta.c.config)).scalar()
    except DatabaseError as exc:  # unreachable server, or a file that is no database
        raise unavailable(url, exc) from None
    if text is None:
        raise LedgerNotInitializedError(f"ledger at {safe_url(url)} has no configuration")
    return LedgerConfig.from_json(text)


def _check_new_store(url: str) -> None:
    """Before `Ledger.init` opens a SQLite store: its folder exists, and an existing file
    is a database that holds nothing but a ledger (read-only, so a refused file is left as
    it was)."""
    path = sqlite_path(url)
    if path is None:
        store_url(url)  # refuses an unusable URL before any driver is loaded
        return
    if not path.parent.is_dir():
        raise LedgerUnavailableError(
            f"cannot create the ledger store at {safe_url(url)}: no folder {str(path.parent)!r}"
        )
    _refuse_foreign_tables(url, sqlite_tables(url) or set())


def _refuse_foreign_tables(url: str, tables: set[str]) -> None:
    foreign = sorted(t for t in tables - LEDGER_TABLES if not t.startswith("sqlite_"))
    if foreign:
        raise LedgerUnavailableError(
            f"the store at {safe_url(url)} holds tables that are not a ledger's "
            f"({', '.join(foreign[:5])}); create the ledger in a database of its own"
        )


def _configured(engine: Any) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(s.meta.c.id)).first() is not None


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
class TaskInfo:
    round: int
    task: str
    request: str
    status: str
    assets: tuple[str, ...]
    payouts: tuple[int, ...]
    charge: int
    fraction: int
    margin_to: str
    success: bool | None
    sla_met: bool | None
    latency_ms: int | None


@dataclass(frozen=True)
class JournalEntry:
    id: int
    op: str
    signer: str
    nonce: int
    postings: tuple[tuple[str, int], ...]


class Ledger:
    """A ledger store opened by URL (`sqlite:///file.db`, `postgresql+psycopg://...`)."""

    def __init__(
        self, url: str, *, durable: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = url
        self.clock = clock
        store_url(url)
        # A SQLite file is looked at read-only first: the engine's connection would switch
        # it to WAL (a write) before anything could tell that it is not a ledger, and a
        # mistyped path would become an empty database.
        tables = None if missing_sqlite_file(url) else sqlite_tables(url)
        if missing_sqlite_file(url) or (tables is not None and "ledger_meta" not in tables):
            raise LedgerNotInitializedError(
                f"no ledger at {safe_url(url)}; run `mercat ledger init`"
            )
        self.engine = make_engine(url, durable=durable)
        try:
            self.config = _configuration(self.engine, url)
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def id(self) -> str:
        """The ledger's id: every message and oracle report for it names this."""
        return self.config.ledger_id

    @classmethod
    def init(
        cls,
        url: str,
        config: LedgerConfig,
        *,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> Ledger:
        """Create (or upgrade) the schema and store `config`; refuses a configured store.
        A config without a `ledger_id` gets a random one.

        `durable=False`: see `mercat.ledger.store.make_engine` (SQLite only)."""
        if not isinstance(config, LedgerConfig):
            raise InvalidParameterError(f"config must be a LedgerConfig, got {shown(config)}")
        if not config.ledger_id:
            config = replace(config, ledger_id=secrets.token_hex(16))
        _check_new_store(url)
        engine = make_engine(url, durable=durable)
        try:
            try:
                _refuse_foreign_tables(url, set(inspect(engine).get_table_names()))
                revision = current_revision(engine)
                if revision == SCHEMA_REVISION and _configured(engine):
                    raise AlreadyExistsError(f"a ledger is already initialised at {safe_url(url)}")
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
        return cls(url, durable=durable, clock=clock)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the write path ---------------------------------------------------------------------

    def submit(self, message: m.SignedMessage) -> Receipt:
        """Apply one signed message, all or nothing (see the module docstring)."""
        if len(message.payload) < LARGE_MESSAGE:
            return self._submit(message)
        # A large batch keeps some 40,000 objects alive until it ends; Python's default
        # collector walked them in 25-33 µs per task (docs/ledger.md, "Measured throughput").
        with fewer_collections():
            return self._submit(message)

    def _submit(self, message: m.SignedMessage) -> Receipt:
        envelope = m.parse(message)
        if envelope.ledger != self.config.ledger_id:
            raise WrongLedgerError(
                f"the message was signed for ledger {envelope.ledger}, this is {self.id}"
            )
        now = int(self.clock())
        if envelope.expires < now:
            raise ExpiredMessageError(f"the message expired at {envelope.expires} (now {now})")
        if envelope.expires > now + m.MAX_VALIDITY_S:
            raise ExpiredMessageError(
                f"the message claims to stay valid until {envelope.expires}, more than "
                f"{m.MAX_VALIDITY_S} s ahead"
            )
        verify(envelope.signer, message.payload, message.signature)
        op = envelope.op
        # A few reports are checked here; a batch's are checked by threads while the
        # transaction reads and computes, and `checked` waits for them before anything
        # commits (a forged report rolls the transaction back and is the error raised).
        reports = ReportCheck(_reports_of(op))

        def checked(receipt: Receipt) -> Receipt:
            reports.wait()
            return receipt

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
                    return checked(Receipt(status[1], op.name, applied=False))
            if isinstance(op, m.SettleTasks):
                settled = _settled_entry_if_all(tx, op)
                if settled is not None:
                    return checked(Receipt(settled, op.name, applied=False))
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
            return checked(Receipt(entry_id, op.name, applied=True, result=result))

        try:
            try:
                return run_in_transaction(self.engine, work)
            except BaseException:
                reports.wait()  # a forged report outranks what the transaction refused
                raise
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
        return 0 if value is None else stored_int(value, f"book {book[:80]!r}")

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
        return stored_int(self._scalar(select(s.meta.c.round)), "the ledger's round")

    def books(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            # Rows are fetched before they are checked: a refused value must not leave a
            # statement open on the connection (SQLite would keep its WAL files behind).
            rows = connection.execute(select(s.books.c.name, s.books.c.balance)).all()
        return {name: stored_int(balance, f"book {name!r}") for name, balance in rows}

    def accounts(self) -> list[tuple[str, str, int]]:
        """(key, role, spendable balance) of every account."""
        query = (
            select(s.accounts.c.key, s.accounts.c.role, s.books.c.balance)
            .join(s.books, s.books.c.name == literal("avail:").concat(s.accounts.c.key))
            .order_by(s.accounts.c.role, s.accounts.c.key)
        )
        with self.engine.connect() as connection:
            return [
                (str(k), str(r), stored_int(b, f"book 'avail:{k}'"))
                for k, r, b in connection.execute(query).all()
            ]

    def assets(self, after: str | None = None, limit: int | None = None) -> list[AssetInfo]:
        """Assets by id in byte order: every one, or those with an id above `after`, the
        first `limit` of them (a page: the next one is after the last id of this one)."""
        key = in_byte_order(s.assets.c.id, self.engine.dialect)
        query = (
            select(s.assets.c.id, s.assets.c.owner, s.assets.c.status, s.books.c.balance)
            .join(s.books, s.books.c.name == literal("stake:").concat(s.assets.c.id))
            .order_by(key)
        )
        if after is not None:
            query = query.where(key > after)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [
                AssetInfo(a, o, st, stored_int(b, f"book 'stake:{a}'"))
                for a, o, st, b in connection.execute(query).all()
            ]

    def requests(self) -> list[tuple[str, str]]:
        """(request id, owner key) of every request posted on the ledger, by id."""
        query = select(s.requests.c.id, s.requests.c.owner).order_by(s.requests.c.id)
        with self.engine.connect() as connection:
            return [(str(r), str(o)) for r, o in connection.execute(query)]

    def request_records(
        self,
        status: str | None = None,
        *,
        owner: str | None = None,
        ids: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]:
        """Requests with their signed terms and life cycle, in posting order: every one, or
        those with `status`, of `owner`, among `ids` (at most 4000), the first `limit`."""
        query = select(s.requests).order_by(s.requests.c.entry_id, s.requests.c.id)
        if status is not None:
            query = query.where(s.requests.c.status == status)
        if owner is not None:
            query = query.where(s.requests.c.owner == owner)
        if ids is not None:
            query = query.where(s.requests.c.id.in_(sorted(set(ids))[:4000]))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [request_record(row) for row in connection.execute(query)]

    def asset_statuses(self) -> dict[str, int]:
        """How many assets have each status (counted by the database)."""
        query = select(s.assets.c.status, func.count()).group_by(s.assets.c.status)
        with self.engine.connect() as connection:
            return {str(status): int(n) for status, n in connection.execute(query)}

    def offers(self, assets: Collection[str] | None = None) -> dict[str, Offer]:
        """The current offer of every asset that has one, or of those among `assets`, by
        asset id."""
        query = select(s.offers.c.asset, s.offers.c.offer)
        with self.engine.connect() as connection:
            if assets is None:
                rows = list(connection.execute(query))
            else:
                rows = [
                    row
                    for part in in_lists(assets)
                    for row in connection.execute(query.where(s.offers.c.asset.in_(part)))
                ]
            return {str(a): parse_offer(o) for a, o in rows}  # type: ignore[misc]

    def active_offers(self, limit: int) -> list[tuple[AssetInfo, Offer]]:
        """The first `limit` active assets that have an offer, by id in byte order, with it."""
        key = in_byte_order(s.assets.c.id, self.engine.dialect)
        query = (
            select(
                s.assets.c.id, s.assets.c.owner, s.assets.c.status, s.books.c.balance,
                s.offers.c.offer,
            )
            .join(s.books, s.books.c.name == literal("stake:").concat(s.assets.c.id))
            .join(s.offers, s.offers.c.asset == s.assets.c.id)
            .where(s.assets.c.status == "active")
            .order_by(key)
            .limit(limit)
        )  # fmt: skip
        with self.engine.connect() as connection:
            return [
                (AssetInfo(a, o, st, stored_int(b, f"book 'stake:{a}'")), parse_offer(offer))
                for a, o, st, b, offer in connection.execute(query)
            ]

    def tasks(self, round_: int | None = None, status: str | None = None) -> list[TaskInfo]:
        """Tasks with their terms and state, by round and id."""
        query = select(s.tasks).order_by(s.tasks.c.round, s.tasks.c.task)
        if round_ is not None:
            query = query.where(s.tasks.c.round == round_)
        if status is not None:
            query = query.where(s.tasks.c.status == status)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            members = connection.execute(
                select(s.task_assets.c.round, s.task_assets.c.task, s.task_assets.c.asset,
                       s.task_assets.c.payout)
                .order_by(s.task_assets.c.round, s.task_assets.c.task, s.task_assets.c.position)
            ).all()  # fmt: skip
        by_task: dict[tuple[int, str], list[tuple[str, int]]] = {}
        for r, t, a, p in members:
            by_task.setdefault((_n(r, "a task's round"), str(t)), []).append(
                (str(a), _n(p, f"a payout of task {t!r}"))
            )
        out = []
        for row in rows:
            parts = by_task.get((_n(row.round, "a task's round"), str(row.task)), [])
            payouts = tuple(p for _, p in parts)
            out.append(
                TaskInfo(
                    round=_n(row.round, "a task's round"), task=row.task, request=row.request,
                    status=row.status, assets=tuple(a for a, _ in parts), payouts=payouts,
                    charge=sum(payouts) if row.charge is None else _n(row.charge, "a charge"),
                    fraction=_n(row.fraction, "a fraction"), margin_to=row.margin_to,
                    success=row.success, sla_met=row.sla_met, latency_ms=row.latency_ms,
                )
            )  # fmt: skip
        return out

    def asset(self, asset: str) -> AssetInfo:
        for info in self.assets():
            if info.id == asset:
                return info
        raise UnknownAssetError(f"no asset {shown(asset)}")

    def journal(self, limit: int | None = None, after: int = 0) -> list[JournalEntry]:
        """Entries with id > `after`, oldest first, each with its postings; at most `limit`
        (1 to `MAX_JOURNAL_PAGE`, None: all). InvalidParameterError for a bound out of range."""
        if limit is not None and not _int_in(limit, 1, MAX_JOURNAL_PAGE):
            raise InvalidParameterError(
                f"limit must be an integer in [1, {MAX_JOURNAL_PAGE}], got {shown(limit)}"
            )
        if not _int_in(after, 0, MAX_INT - 1):
            raise InvalidParameterError(
                f"after must be an integer in [0, 2^62), got {shown(after)}"
            )
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
            amount = stored_int(amount, f"a posting of entry {entry_id} to {book!r}")
            by_entry.setdefault(entry_id, []).append((book, amount))
        return [
            JournalEntry(
                r.id, r.op, r.signer, stored_int(r.nonce, f"the nonce of entry {r.id}"),
                tuple(by_entry.get(r.id, ())),
            )
            for r in rows
        ]  # fmt: skip

    def oracle_reports(
        self, round_: int, tasks: Collection[str] | None = None, status: str | None = None
    ) -> list[tuple[SignedReport, str]]:
        """The signed oracle reports the ledger holds for tasks of `round_` (all of its
        tasks, or those named), each with its status: `pending` (relayed, not yet settled),
        `agree` / `disagree` (with the settled verdict) or `late` (after settlement)."""
        query = select(s.oracle_reports).where(s.oracle_reports.c.round == round_)
        if status is not None:
            query = query.where(s.oracle_reports.c.status == status)
        names = None if tasks is None else sorted(set(tasks))
        out: list[tuple[SignedReport, str]] = []
        with self.engine.connect() as connection:
            for start in range(0, 1 if names is None else len(names), 4000):
                part = query
                if names is not None:
                    part = query.where(s.oracle_reports.c.task.in_(names[start : start + 4000]))
                for row in connection.execute(part.order_by(s.oracle_reports.c.task)):
                    report = OracleReport(
                        int(row.round), row.task, bool(row.success), bool(row.sla_met),
                        int(row.latency_ms), row.digest, self.config.ledger_id,
                    )  # fmt: skip
                    signed = SignedReport(report, row.oracle, bytes.fromhex(row.signature))
                    out.append((signed, str(row.status)))
        return out

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
            ).all()
            reports = {(_n(r, "a report's round"), str(t)): int(n) for r, t, n in counted}
        by_task: dict[tuple[int, str], list[tuple[str, int]]] = {}
        for r, t, payout, owner in members:
            by_task.setdefault((_n(r, "a task's round"), str(t)), []).append(
                (str(owner), _n(payout, f"a payout of task {t!r}"))
            )
        records = []
        for row in tasks:
            key = (_n(row.round, "a task's round"), str(row.task))
            owners = by_task.get(key, [])
            paid = bool(row.success) and bool(row.sla_met)  # a late task pays nothing
            payouts: dict[str, int] = {}
            if paid:
                for owner, payout in owners:
                    payouts[owner] = payouts.get(owner, 0) + payout
            charge = sum(p for _, p in owners) if row.charge is None else _n(row.charge, "a charge")
            records.append(
                SettledTask(
                    round=key[0], task=key[1], requester=str(row.owner), success=bool(row.success),
                    sla_met=bool(row.sla_met), latency_ms=_n(row.latency_ms, "a latency"),
                    price=charge, payouts=payouts,
                    providers=tuple(dict.fromkeys(o for o, _ in owners)),
                    reports=reports.get(key, 0),
                )
            )  # fmt: skip
        return records

    def verify(self, *, signatures: bool = True) -> VerifyReport:
        """Recompute every balance from the journal; LedgerIntegrityError on any problem."""
        return verify_ledger(self.engine, signatures=signatures)


IN_LIST = 900
"""Ids bound in one IN (...) list: below SQLite's oldest limit on a statement's parameters
(999), so a page of any size reads in a few statements on every backend."""


def in_lists(ids: Collection[str]) -> list[list[str]]:
    """The distinct `ids`, sorted, in lists of at most IN_LIST (one IN (...) each)."""
    distinct = sorted(set(ids))
    return [distinct[k : k + IN_LIST] for k in range(0, len(distinct), IN_LIST)]
