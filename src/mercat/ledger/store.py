"""Where the ledger's rows live: an SQLAlchemy engine chosen by URL, and write transactions.

- SQLite (the embedded default, `sqlite:///path.db`): WAL journal, `synchronous=FULL`
  (a commit survives a power cut, not only a killed process), foreign keys on, and every
  write transaction opened with `BEGIN IMMEDIATE`, so writers (threads or processes)
  queue for the one write lock *before* reading the balances they will change: no lost
  update, no double spend, no upgrade deadlock. A busy store is waited on (busy_timeout).
- PostgreSQL (`postgresql+psycopg://...`, for many writers): READ COMMITTED with explicit
  row locks: each operation locks the rows it will change with `SELECT ... FOR UPDATE`,
  the task row first and then the books in name order (one global order, so two
  operations cannot wait on each other in a cycle), then reads, checks and writes. A
  deadlock or serialization failure that still happens is retried from the start.

`Txn` wraps one transaction's connection with the few primitives every operation uses.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from sqlalchemy import bindparam, create_engine, event, insert, select, update
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from mercat.errors import LedgerIntegrityError, LedgerUnavailableError
from mercat.ledger import schema as s
from mercat.runtime.limits import check_postings
from mercat.untrusted import shown

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 60_000
MAX_ATTEMPTS = 50
# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = {"40001", "40P01"}


#: The stores a ledger runs on: (backend, driver) as SQLAlchemy names them.
STORES = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}
_DEFAULT_DRIVERS = {"sqlite": "pysqlite"}  # SQLAlchemy's own default for postgresql is psycopg2
_USE = "use sqlite:///path.db or postgresql+psycopg://user@host/db"


def store_url(url: object) -> URL:
    """`url` (a string, or a URL already parsed) parsed, if it names a store the ledger runs
    on (`STORES`); otherwise LedgerUnavailableError, before any driver is imported or any
    file is opened."""
    if isinstance(url, URL):
        parsed = url
    elif not isinstance(url, str) or not url.strip():
        raise LedgerUnavailableError(f"the ledger URL is empty; {_USE}")
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise LedgerUnavailableError(
                f"not a usable database URL: {shown(_password_hidden(url))}; {_USE}"
            ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if (backend, driver or _DEFAULT_DRIVERS.get(backend)) not in STORES:
        rendered = parsed.render_as_string(hide_password=True)
        raise LedgerUnavailableError(
            f"not a usable database URL: {shown(rendered)} (the ledger runs on SQLite or on "
            f"PostgreSQL through psycopg); {_USE}"
        )
    return parsed


def make_engine(
    url: str | URL, *, pool_size: int = 8, durable: bool = True, begin_immediate: bool = True
) -> Engine:
    """An engine for `url`, configured for the ledger's transactions (see module docstring).

    `durable=False` (SQLite only) commits with synchronous=NORMAL: in WAL mode a commit
    still survives a killed process, but not a power cut. It saves one fsync per commit
    (about 10 ms on the build machines' disks); tests that do not test durability use it.

    `begin_immediate=False` (SQLite only) is for a store that one process writes, behind a
    lock of its own (the node's task board): transactions are left to the sqlite3 module,
    which begins one at the first write and runs reads outside any, as a plain `sqlite3`
    connection does. That saves the BEGIN that SQLAlchemy runs as a statement of its own
    for every transaction, reads included (a fifth of what the board costs a claim:
    benchmarks/bench_board.py); writers in other processes would not queue as above.

    An in-memory SQLite database (`sqlite://`) is one connection that every thread shares:
    each connection to `:memory:` would be a database of its own. It lives until the
    engine is disposed of.
    """
    parsed = store_url(url)
    if parsed.get_backend_name() == "sqlite":
        busy = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.database in (None, "", ":memory:"):
            shared = {**busy, "check_same_thread": False}
            engine = create_engine(parsed, connect_args=shared, poolclass=StaticPool)
        else:
            engine = create_engine(parsed, connect_args=busy)
        _configure_sqlite(engine, "FULL" if durable else "NORMAL", begin_immediate)
        return engine
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def in_byte_order(column: ColumnElement[str], dialect: Dialect) -> ColumnElement[str]:
    """`column` compared in byte order, the order Python compares ids in: PostgreSQL's
    default collation follows the database's locale (which orders "a-b" and "ab" by
    letters first), SQLite's BINARY already is byte order."""
    return column.collate("C") if dialect.name == "postgresql" else column


_USERINFO_PASSWORD = re.compile(r"(://[^/?#@:]*):[^/?#@]*@")


def _password_hidden(text: str) -> str:
    """`text`, a URL SQLAlchemy could not parse, with what stands where a password would
    (`scheme://user:PASSWORD@host`) replaced by *** as SQLAlchemy renders it: a message about
    a mistyped URL must not print the password typed with it."""
    return _USERINFO_PASSWORD.sub(r"\1:***@", text)


def safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return repr(_password_hidden(url))


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///path` URL (None for another store, an in-memory database or
    a `file:` URI, which SQLite resolves itself; a URL that is not usable: `make_engine`
    reports it)."""
    try:
        parsed = store_url(url)
    except LedgerUnavailableError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def missing_sqlite_file(url: str) -> bool:
    """True for a `sqlite:///path` URL whose file does not exist (in-memory: False): opening
    it would create an empty file, so a mistyped path would leave litter behind."""
    path = sqlite_path(url)
    return path is not None and not path.exists()


def sqlite_tables(url: str) -> set[str] | None:
    """The tables of an existing SQLite file, read through a read-only connection (None for
    another store, or a file that is not there).

    Opening the file through the ledger's engine would first switch it to WAL and set other
    pragmas, which writes to it: a foreign database, or an empty file, must be recognised
    and refused before that. LedgerUnavailableError if the file is not a database."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return None
    target = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    try:
        connection = sqlite3.connect(target, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {str(name) for (name,) in rows}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerUnavailableError(
            f"cannot open the ledger store at {safe_url(url)}: {first}"
        ) from None


def driver_message(exc: DBAPIError) -> str:
    """The first line of what the database driver said (no SQL, no URL, no password)."""
    text = str(exc.orig or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unavailable(url: str, exc: DBAPIError, what: str = "ledger store") -> LedgerUnavailableError:
    """The error for a store that cannot be opened (a server that is not there, a file that
    is not a database): the driver's first line, no password."""
    return LedgerUnavailableError(
        f"cannot open the {what} at {safe_url(url)}: {driver_message(exc)}"
    )


def _configure_sqlite(engine: Engine, synchronous: str, begin_immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        if begin_immediate:
            # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins.
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    if begin_immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection):  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_retryable(exc: BaseException) -> bool:
    """A transient conflict: SQLite still busy, or a PostgreSQL serialization/deadlock abort."""
    if isinstance(exc, OperationalError) and "locked" in str(exc.orig):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
    return False


def run_in_transaction(engine: Engine, work: Callable[[Txn], T]) -> T:
    """Run `work` in one write transaction; commit on return, roll back on any exception,
    and start over (up to MAX_ATTEMPTS) on a transient conflict."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            with engine.begin() as connection:
                return work(Txn(connection))
        except DBAPIError as exc:
            if not is_retryable(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise AssertionError("unreachable")


class Txn:
    """One write transaction: lock and read books, append an entry and its postings."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.locking = connection.dialect.name != "sqlite"  # SQLite already holds the lock

    def execute(self, statement, parameters=None):  # type: ignore[no-untyped-def]
        return self.connection.execute(statement, parameters)

    def lock_books(self, names: Iterable[str]) -> dict[str, int]:
        """Lock the named books (in name order) and return their balances.

        A name that has no book is absent from the result; callers check that."""
        ordered = sorted(set(names))
        query = select(s.books.c.name, s.books.c.balance).where(s.books.c.name.in_(ordered))
        if self.locking:
            query = query.order_by(s.books.c.name).with_for_update()
        return {name: balance for name, balance in self.execute(query)}

    def create_books(self, books: Mapping[str, str]) -> None:
        """Create empty books, {name: kind}."""
        if books:
            self.execute(
                insert(s.books),
                [{"name": name, "kind": kind, "balance": 0} for name, kind in books.items()],
            )

    def append_entry(self, op: str, signer: str, nonce: int, payload: str, signature: str) -> int:
        result = self.execute(
            insert(s.entries).values(
                op=op, signer=signer, nonce=nonce, payload=payload, signature=signature
            )
        )
        return int(result.inserted_primary_key[0])

    def post(self, entry_id: int, moves: Mapping[str, int], balances: dict[str, int]) -> None:
        """Record postings {book: signed amount} of one entry and apply them.

        `balances` are the locked balances the caller read. The postings must sum to zero
        (double entry), leave no book but `world` below zero (InsufficientFundsError) and
        every book within its range (`mercat.runtime.limits`, BalanceOverflowError), or
        nothing is written. `balances` is updated to the new values.
        """
        moves = {book: amount for book, amount in moves.items() if amount != 0}
        for book in moves:
            if book not in balances:
                raise LedgerIntegrityError(f"posting to book {book!r} that was not locked")
        check_postings(balances.__getitem__, moves)
        if not moves:
            return
        self.execute(
            insert(s.postings),
            [
                {"entry_id": entry_id, "book": book, "amount": amount}
                for book, amount in moves.items()
            ],
        )
        for book, amount in moves.items():
            balances[book] += amount
        # One executemany, in book order (psycopg pipelines it: one round trip, not one per book).
        self.execute(
            update(s.books)
            .where(s.books.c.name == bindparam("book"))
            .values(balance=s.books.c.balance + bindparam("amount")),
            [{"book": book, "amount": amount} for book, amount in sorted(moves.items())],
        )
