"""The node's task board: what the live market knows beside the ledger.

The ledger holds the money and the verdicts; the board holds what agents, oracles,
requesters and the dashboard need in between, indexed for their questions:

- `tasks` and `task_assets`: every task the round loop opened, with its request's workload,
  inputs and SLA deadline, the time the node opened it, the assets it binds (server or
  named asset) and, once settled, its verdict and output CID; found by assignee (asset or
  owner), by requester, by request;
- `claims`: providers' signed outcome claims (`mercat.node.claims`), with the time the node
  received each one (the oracles measure a task's latency by these stamps);
- `reports`: oracles' signed reports sent to the node, until the node settles them on the
  ledger (`settled`), or after (`late`);
- `rounds`: the round history (phase, counts, clearing prices, token flows, timings), and
  `round_totals`: how many rounds there are and their token flows summed, kept as the rounds
  are written, so that the market's summary costs the same however old the market is;
- `events`: the event log (`mercat.runtime.events` and the node's own), for the stream and
  the dashboard; the newest `MAX_EVENTS` are kept.

The other side, what an agent, an oracle or a requester reading these views back over HTTP
keeps of them, is `mercat.node.views`.

The board is derived state: the ledger is the truth, and the round loop rebuilds what the
board lacks from it after a crash (`mercat.node.round_loop`). It lives in a SQLite file (or
in memory), or in a PostgreSQL database of its own for a node that keeps its ledger there
too; the tables are `mercat.node.board_tables`, the engine is opened as the ledger's is
(`mercat.ledger.store.make_engine`: SQLite in WAL mode with synchronous=NORMAL, which
survives a killed process). Every operation runs behind one lock: the node is the board's
only process, and every operation on it is a few rows. So on SQLite a transaction begins at
its first write, as the sqlite3 module begins it (`begin_immediate=False`), rather than
with a BEGIN IMMEDIATE that makes writers of several processes queue, as the ledger's do.
`changed` wakes the threads that wait for news (the round loop waiting for claims and
reports).

Ids are ordered in byte order on every backend (`mercat.ledger.store.in_byte_order`), the
order Python compares them in, so pages join up the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import and_, case, delete, func, insert, inspect, not_, or_, select, update
from sqlalchemy import bindparam as param
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, RowMapping
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.schema import CreateColumn, Table
from sqlalchemy.sql import ColumnElement, Executable

from mercat.errors import AlreadyExistsError, InvalidParameterError, LedgerUnavailableError
from mercat.ledger.ledger import in_lists
from mercat.ledger.store import in_byte_order, make_engine, safe_url, store_url, unavailable
from mercat.node import board_tables as b
from mercat.node.board_tables import FLOWS
from mercat.node.claims import SignedClaim
from mercat.node.sealing import SignedGrant
from mercat.oracle.report import SignedReport

MAX_EVENTS = 20_000

_USE = "give a SQLite file's path, sqlite:///path.db or postgresql+psycopg://user@host/db"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class BoundAsset:
    asset: str
    owner: str
    kind: str  # "server" runs the task; app, dataset, model are bound by the request
    payout: int


@dataclass(frozen=True)
class BoardTask:
    """A task as the round loop opens it."""

    round: int
    task: str
    request: str
    requester: str | None
    workload: str
    inputs: tuple[str, ...]
    deadline_ms: int
    charge: int
    assets: tuple[BoundAsset, ...]
    sealed: tuple[str, ...] = ()  # what the request keeps encrypted (mercat.node.sealing)

    @property
    def servers(self) -> tuple[str, ...]:
        return tuple(a.asset for a in self.assets if a.kind == "server")


@dataclass(frozen=True)
class Verdict:
    """What settlement decided for a task."""

    success: bool
    sla_met: bool
    paid: bool
    latency_ms: int
    output: str | None


def _flows(record: dict[str, Any]) -> dict[str, int]:
    """A round record's token flows, 0 for those it does not name yet."""
    return {key: int(record.get(key) or 0) for key in FLOWS}


def _sealed(column: str | None) -> tuple[str, ...]:
    return tuple(part for part in (column or "").split(",") if part)


def board_url(where: str | Path | None) -> URL:
    """Where a board lives, as `TaskBoard` is given it: a database URL (`sqlite:///...`,
    `postgresql+psycopg://...`), a SQLite file's path, or None for memory."""
    if where is None:
        return URL.create("sqlite")
    if isinstance(where, str) and "://" in where:
        try:
            return store_url(where)
        except LedgerUnavailableError:
            raise InvalidParameterError(
                f"not a usable task board: {safe_url(where)}; {_USE}"
            ) from None
    if not isinstance(where, (str, Path)):
        raise InvalidParameterError(f"not a usable task board: {where!r}; {_USE}")
    return URL.create("sqlite", database=str(where))


def _prepare(connection: Connection, shown: str) -> None:
    """Make the database a board: refuse tables of the board's names that are something
    else (a ledger's `tasks`, in a database given to both), then create the tables and
    indexes it lacks, add the columns older boards lack, and keep `round_totals`."""
    found = inspect(connection)
    present = set(found.get_table_names())
    columns = {
        table.name: {c["name"] for c in found.get_columns(table.name)}
        for table in b.metadata.sorted_tables
        if table.name in present
    }
    for name, have in columns.items():
        lacking = set(b.metadata.tables[name].c.keys()) - have - set(b.ADDED_COLUMNS.get(name, ()))
        if lacking:
            raise InvalidParameterError(
                f"the database at {shown} holds a table {name!r} that is not a task board's "
                f"(it has no column {min(lacking)!r}); give the board a database of its own"
            )
    b.metadata.create_all(connection)
    for name in columns:  # an older board: the indexes and columns added since
        table = b.metadata.tables[name]
        for index in table.indexes:
            index.create(connection, checkfirst=True)
        for column in b.ADDED_COLUMNS.get(name, ()):
            if column not in columns[name]:
                ddl = CreateColumn(table.c[column]).compile(dialect=connection.dialect)
                connection.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
    if connection.execute(select(b.round_totals.c.id)).first() is None:
        # A new board, or one written before the totals were kept: summed once from its
        # rounds, then kept by `set_round`.
        count, sums = 0, dict.fromkeys(FLOWS, 0)
        for (record,) in connection.execute(select(b.rounds.c.record)):
            count += 1
            for key, value in _flows(json.loads(record)).items():
                sums[key] += value
        connection.execute(insert(b.round_totals).values(id=1, rounds=count, **sums))


@contextmanager
def _transaction(engine: Engine, held: Connection | None) -> Iterator[Connection]:
    """One transaction, on the connection the board keeps (`held`) or on one taken from
    `engine`'s pool for its length."""
    if held is None:
        with engine.begin() as connection:
            yield connection
    else:
        with held.begin():
            yield held


class _Part(NamedTuple):
    """The statements that read one part of tasks' views (`_Statements`)."""

    of_task: Executable
    of_tasks: Executable


_MEMBER_FIELDS = ("asset", "owner", "kind", "payout")
_CLAIM_FIELDS = ("asset", "owner", "success", "output", "run_ms", "error", "received_ms")


class _Statements:
    """Every statement of fixed shape the board runs, built once per engine with its values
    as parameters: SQLAlchemy then keeps each one's cache key and compiled form, so an
    operation costs its execution, not the building of its SQL (which costs more than the
    execution on SQLite: `benchmarks/bench_board.py`). Ids are ordered in byte order."""

    def __init__(self, dialect: Dialect) -> None:
        t, a, c, r, g, e = b.tasks, b.task_assets, b.claims, b.reports, b.key_grants, b.events
        rounds, totals = b.rounds, b.round_totals

        def by_bytes(column: ColumnElement[str]) -> ColumnElement[str]:
            return in_byte_order(column, dialect)

        self.by_bytes = by_bytes
        this_task = (t.c.round == param("at_round"), t.c.task == param("at_task"))
        ignoring = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        # tasks
        self.new_tasks = ignoring(t).on_conflict_do_nothing()
        self.new_task_assets = ignoring(a).on_conflict_do_nothing()
        self.note = update(t).where(*this_task).values(note=param("note_text"))
        self.task = select(t).where(*this_task)
        self.has_task = select(t.c.round).where(*this_task)
        self.settle = (
            update(t).where(*this_task)
            .values(status="settled", success=param("v_success"), sla_met=param("v_sla_met"),
                    paid=param("v_paid"), latency_ms=param("v_latency_ms"),
                    output=param("v_output"), settled_ms=param("v_at"))
        )  # fmt: skip
        self.settle_reports = (
            update(r)
            .where(r.c.round == param("at_round"), r.c.task == param("at_task"),
                   r.c.status == "pending")
            .values(status="settled")
        )  # fmt: skip
        self.open_rounds = (
            select(t.c.round).where(t.c.status == "open").distinct().order_by(t.c.round)
        )
        self.open_tasks = (
            select(t).where(t.c.round == param("at_round"), t.c.status == "open")
            .order_by(by_bytes(t.c.task))
        )  # fmt: skip
        self.opened = select(t.c.task, t.c.opened_ms).where(t.c.round == param("at_round"))

        # A part of tasks' views, each task's rows in their order: of one task, and of a
        # list of tasks of one round (the list is bound as it comes, so that statement's
        # SQL is written out at each execution: dearer, but one for a page).
        def parts(table: Table, names: Sequence[str], order: ColumnElement[Any]) -> _Part:
            rows = select(table.c.task, *(table.c[name] for name in names)).order_by(order)
            rows = rows.where(table.c.round == param("at_round"))
            return _Part(
                rows.where(table.c.task == param("at_task")),
                rows.where(table.c.task.in_(param("at_tasks", expanding=True))),
            )

        self.members = parts(a, _MEMBER_FIELDS, a.c.position)
        self.claimed = parts(c, _CLAIM_FIELDS, by_bytes(c.c.asset))
        self.reported = parts(r, ("oracle",), by_bytes(r.c.oracle))
        self.granted = parts(g, ("asset",), by_bytes(g.c.asset))
        # key grants, claims, reports
        self.add_grant = insert(g)
        self.grants = (
            select(g.c.wire).where(g.c.round == param("at_round"), g.c.task == param("at_task"))
            .order_by(by_bytes(g.c.asset))
        )  # fmt: skip
        self.grants_of = self.grants.where(g.c.asset == param("at_asset"))
        self.add_claim = insert(c)
        self.claims = (
            select(c.c.task, c.c.asset, c.c.success, c.c.output, c.c.received_ms)
            .where(c.c.round == param("at_round"))
            .order_by(by_bytes(c.c.task), by_bytes(c.c.asset))
        )
        self.add_report = insert(r)
        self.reports = (
            select(r.c.task, r.c.wire)
            .where(r.c.round == param("at_round"), r.c.status == param("at_status"))
            .order_by(by_bytes(r.c.task), by_bytes(r.c.oracle))
        )
        self.report_counts = select(r.c.status, func.count().label("n")).group_by(r.c.status)
        # rounds (on PostgreSQL the row is locked until the update: a read-modify-write)
        self.round_record = (
            select(rounds.c.record).where(rounds.c.round == param("at_round")).with_for_update()
        )
        self.new_round = insert(rounds)
        self.update_round = (
            update(rounds).where(rounds.c.round == param("at_round"))
            .values(phase=param("new_phase"), record=param("new_record"),
                    finished_ms=func.coalesce(param("finished"), rounds.c.finished_ms))
        )  # fmt: skip
        self.add_totals = (
            update(totals).where(totals.c.id == 1)
            .values(rounds=totals.c.rounds + param("more_rounds"),
                    **{key: totals.c[key] + param(f"more_{key}") for key in FLOWS})
        )  # fmt: skip
        self.totals = select(totals).where(totals.c.id == 1)
        self.rounds = select(rounds).order_by(rounds.c.round.desc()).limit(param("at_most"))
        self.rounds_before = self.rounds.where(rounds.c.round < param("before"))
        self.last_round = select(func.coalesce(func.max(rounds.c.round), 0))
        self.unfinished = (
            select(rounds.c.round).where(rounds.c.phase.not_in(FINAL_PHASES))
            .order_by(rounds.c.round)
        )  # fmt: skip
        # statistics
        self.asset_stats = (
            select(
                a.c.asset,
                func.count().label("settled"),
                func.sum(case((t.c.paid, 0), else_=1)).label("failed"),
                func.sum(case((and_(t.c.success, not_(t.c.sla_met)), 1), else_=0))
                .label("late"),
            )
            .select_from(a.join(t, and_(t.c.round == a.c.round, t.c.task == a.c.task)))
            .where(t.c.status == "settled")
            .group_by(a.c.asset)
            .order_by(by_bytes(a.c.asset))
        )  # fmt: skip
        self.asset_stats_of = self.asset_stats.where(
            a.c.asset.in_(param("at_assets", expanding=True))
        )
        self.task_counts = select(
            t.c.status,
            func.count().label("n"),
            func.sum(case((t.c.paid, 1), else_=0)).label("paid"),
            func.sum(case((t.c.sla_met, 1), else_=0)).label("met"),
        ).group_by(t.c.status)
        # events
        self.add_events = insert(e)
        self.last_event = select(func.coalesce(func.max(e.c.id), 0))
        self.trim_events = delete(e).where(e.c.id <= param("oldest_kept"))
        self.events = (
            select(e.c.id, e.c.at_ms, e.c.body).where(e.c.id > param("after"))
            .order_by(e.c.id).limit(param("at_most"))
        )  # fmt: skip


class TaskBoard:
    """See the module docstring. `path`: where the board lives, a SQLite file's path or a
    database URL (`sqlite:///board.db`, `postgresql+psycopg://user@host/board`), or None
    for memory. InvalidParameterError for a URL that names no usable database, or one
    whose tables are not a board's; LedgerUnavailableError if the database cannot be
    opened (the driver's first line)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.url = board_url(path)
        database = self.url.database or ":memory:"
        self.path = (
            Path(database)
            if self.url.get_backend_name() == "sqlite" and database != ":memory:"
            else None
        )  # the SQLite file, for a board in one
        self._lock = threading.RLock()
        self.changed = threading.Condition(threading.Lock())
        self.version = 0
        # The engine, the connection kept (SQLite) and the statements, while open.
        self._open: tuple[Engine, Connection | None, _Statements] | None = None
        with self._lock:
            self._opened()

    def _opened(self) -> tuple[Engine, Connection | None, _Statements]:
        """The engine, the connection the board keeps (if any) and its statements, opened
        again after `close` (call with the lock held): a node's app that is shut down and
        started again (its lifespan closes the board, as it closes the ledger) serves on.
        A board in memory starts empty again.

        On SQLite the board keeps one connection for its life, as it did before it ran on
        SQLAlchemy: taking one from the pool for each operation and handing it back costs
        more than the operation's own statements. On PostgreSQL each operation takes one
        from the pool, which checks that it still works."""
        if self._open is None:
            engine = make_engine(self.url, pool_size=2, durable=False, begin_immediate=False)
            held = None
            try:
                if engine.dialect.name == "sqlite":
                    held = engine.connect()
                with _transaction(engine, held) as connection:
                    _prepare(connection, self.url.render_as_string(hide_password=True))
            except BaseException as exc:
                if held is not None:
                    held.close()
                engine.dispose()
                if isinstance(exc, DatabaseError):  # no server there, a file that is no database
                    raise unavailable(self.url, exc, "task board") from None
                raise
            self._open = (engine, held, _Statements(engine.dialect))
        return self._open

    def close(self) -> None:
        with self._lock:
            if self._open is not None:
                engine, held, _ = self._open
                self._open = None
                if held is not None:
                    held.close()
                engine.dispose()

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, _Statements]]:
        """One write transaction and the board's statements: committed at the end of the
        block (and the waiting threads woken), rolled back if it raises."""
        with self._lock:
            engine, held, sql = self._opened()
            with _transaction(engine, held) as connection:
                yield connection, sql
        self._notify()

    @contextmanager
    def _reading(self) -> Iterator[tuple[Connection, _Statements]]:
        """A transaction for reads, and the board's statements: reads that must agree (a
        page and its parts) agree, as the lock keeps the node's writers out (on SQLite the
        reads run outside any transaction, as `make_engine(begin_immediate=False)` says)."""
        with self._lock:
            engine, held, sql = self._opened()
            with _transaction(engine, held) as connection:
                yield connection, sql

    def _read(
        self, pick: Callable[[_Statements], Executable], values: dict[str, Any] | None = None
    ) -> Sequence[RowMapping]:
        """The rows of one statement, `pick`ed from the board's statements."""
        with self._reading() as (connection, sql):
            return connection.execute(pick(sql), values).mappings().all()

    def _notify(self) -> None:
        with self.changed:
            self.version += 1
            self.changed.notify_all()

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until the board changes after `version` (or `timeout` seconds pass);
        returns the current version."""
        with self.changed:
            if self.version == version:
                self.changed.wait(timeout)
            return self.version

    # --- tasks -----------------------------------------------------------------------------

    def record_tasks(self, tasks: Iterable[BoardTask], opened_ms: int) -> None:
        """Put opened tasks on the board (a task already there is left as it is)."""
        rows, members = [], []
        for t in tasks:
            rows.append(
                {"round": t.round, "task": t.task, "request": t.request,
                 "requester": t.requester, "workload": t.workload,
                 "inputs": json.dumps(list(t.inputs)), "deadline_ms": t.deadline_ms,
                 "charge": t.charge, "opened_ms": opened_ms, "status": "open",
                 "sealed": ",".join(sorted(t.sealed))}
            )  # fmt: skip
            members += [
                {"round": t.round, "task": t.task, "position": i, "asset": a.asset,
                 "owner": a.owner, "kind": a.kind, "payout": a.payout}
                for i, a in enumerate(t.assets)
            ]  # fmt: skip
        with self._write() as (connection, sql):
            if rows:
                connection.execute(sql.new_tasks, rows)
            if members:
                connection.execute(sql.new_task_assets, members)

    def note_tasks(self, round_: int, notes: dict[str, str]) -> None:
        """Say why tasks failed (or were late), for people: the claims' judgement
        (`mercat.node.sla`), then, at settlement, where the oracles found otherwise."""
        if not notes:  # no transaction, no waiters woken for nothing
            return
        with self._write() as (connection, sql):
            connection.execute(
                sql.note,
                [{"at_round": round_, "at_task": task, "note_text": note[:300]}
                 for task, note in notes.items()],
            )  # fmt: skip

    def has_task(self, round_: int, task: str) -> bool:
        return bool(self._read(lambda sql: sql.has_task, {"at_round": round_, "at_task": task}))

    def settle_tasks(self, round_: int, verdicts: dict[str, Verdict]) -> None:
        """Record the verdicts of settled tasks; their unsettled reports become `settled`."""
        if not verdicts:
            return
        at = now_ms()
        with self._write() as (connection, sql):
            connection.execute(
                sql.settle,
                [{"at_round": round_, "at_task": task, "v_success": v.success,
                  "v_sla_met": v.sla_met, "v_paid": v.paid, "v_latency_ms": v.latency_ms,
                  "v_output": v.output, "v_at": at}
                 for task, v in verdicts.items()],
            )  # fmt: skip
            connection.execute(
                sql.settle_reports, [{"at_round": round_, "at_task": task} for task in verdicts]
            )

    def tasks(
        self,
        *,
        round_: int | None = None,
        status: str | None = None,
        assignee: str | None = None,
        requester: str | None = None,
        request: str | None = None,
        limit: int = 100,
        oldest: bool = False,
        after: tuple[int, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Task views (terms, assets, claims, oracles that reported, verdict), newest round
        first (`oldest`: oldest first), each round's tasks by id. `assignee`: an asset id or
        an owner's key. `after`: the (round, task) a page ended with; the next page starts
        after it in the same order."""
        t, a = b.tasks, b.task_assets
        with self._reading() as (connection, sql):
            task_id = sql.by_bytes(t.c.task)
            query = select(t)
            if after is not None:
                rounds_on = t.c.round > after[0] if oldest else t.c.round < after[0]
                query = query.where(or_(rounds_on, and_(t.c.round == after[0], task_id > after[1])))
            if round_ is not None:
                query = query.where(t.c.round == round_)
            if status is not None:
                query = query.where(t.c.status == status)
            if requester is not None:
                query = query.where(t.c.requester == requester)
            if request is not None:
                query = query.where(t.c.request == request)
            if assignee is not None:
                bound = select(a.c.round).where(
                    a.c.round == t.c.round, a.c.task == t.c.task,
                    or_(a.c.asset == assignee, a.c.owner == assignee),
                )  # fmt: skip
                query = query.where(bound.exists())
            query = query.order_by(t.c.round.asc() if oldest else t.c.round.desc(), task_id)
            rows = connection.execute(query.limit(limit)).mappings().all()
            return _views(connection, sql, rows)

    def task(self, round_: int, task: str) -> dict[str, Any] | None:
        with self._reading() as (connection, sql):
            found = connection.execute(sql.task, {"at_round": round_, "at_task": task})
            views = _views(connection, sql, found.mappings().all())
        return views[0] if views else None

    def open_rounds(self) -> list[int]:
        return [int(r["round"]) for r in self._read(lambda sql: sql.open_rounds)]

    def open_tasks_of(self, round_: int) -> list[BoardTask]:
        """The round's open tasks as they were put on the board."""
        with self._reading() as (connection, sql):
            rows = connection.execute(sql.open_tasks, {"at_round": round_}).mappings().all()
            members = _parts(connection, sql.members, rows)
        return [
            BoardTask(
                row["round"], row["task"], row["request"], row["requester"], row["workload"],
                tuple(json.loads(row["inputs"])), row["deadline_ms"], row["charge"],
                tuple(BoundAsset(m["asset"], m["owner"], m["kind"], m["payout"])
                      for m in members.get((row["round"], row["task"]), ())),
                _sealed(row["sealed"]),
            )
            for row in rows
        ]  # fmt: skip

    def opened_ms(self, round_: int, tasks: Sequence[str]) -> dict[str, int]:
        rows = self._read(lambda sql: sql.opened, {"at_round": round_})
        wanted = set(tasks)
        return {r["task"]: int(r["opened_ms"]) for r in rows if r["task"] in wanted}

    # --- key grants (mercat.node.sealing) ---------------------------------------------------

    def add_grant(self, signed: SignedGrant, received_ms: int) -> None:
        """AlreadyExistsError if this replica of the task has its keys already."""
        g = signed.grant
        try:
            with self._write() as (connection, sql):
                connection.execute(
                    sql.add_grant,
                    {"round": g.round, "task": g.task, "asset": g.asset,
                     "wire": json.dumps(signed.to_wire()), "received_ms": received_ms},
                )  # fmt: skip
        except IntegrityError:
            raise AlreadyExistsError(
                f"{g.asset!r} has its keys for task {g.task!r} already"
            ) from None

    def grants(self, round_: int, task: str, asset: str | None = None) -> list[dict[str, Any]]:
        """The grants relayed for a task (wire form), or for one of its servers."""
        values = {"at_round": round_, "at_task": task, "at_asset": asset}
        rows = self._read(lambda sql: sql.grants if asset is None else sql.grants_of, values)
        return [json.loads(r["wire"]) for r in rows]

    # --- claims and reports ----------------------------------------------------------------

    def add_claim(self, signed: SignedClaim, received_ms: int) -> None:
        """AlreadyExistsError if this replica of the task has a claim already."""
        c = signed.claim
        try:
            with self._write() as (connection, sql):
                connection.execute(
                    sql.add_claim,
                    {"round": c.round, "task": c.task, "asset": c.asset, "owner": signed.owner,
                     "success": c.success, "output": c.output, "run_ms": c.run_ms,
                     "error": c.error, "signature": signed.signature.hex(),
                     "received_ms": received_ms},
                )  # fmt: skip
        except IntegrityError:
            raise AlreadyExistsError(
                f"asset {c.asset!r} already has a claim on task {c.task!r} of round {c.round}"
            ) from None

    def claims(self, round_: int) -> dict[str, dict[str, tuple[bool, str | None, int]]]:
        """task -> asset -> (success, output CID, received_ms), for the round's claims."""
        out: dict[str, dict[str, tuple[bool, str | None, int]]] = {}
        for r in self._read(lambda sql: sql.claims, {"at_round": round_}):
            out.setdefault(r["task"], {})[r["asset"]] = (
                bool(r["success"]), r["output"], int(r["received_ms"])
            )  # fmt: skip
        return out

    def add_report(self, signed: SignedReport, status: str, received_ms: int) -> None:
        """AlreadyExistsError if this oracle has reported on the task already."""
        r = signed.report
        try:
            with self._write() as (connection, sql):
                connection.execute(
                    sql.add_report,
                    {"round": r.round, "task": r.task, "oracle": signed.oracle,
                     "wire": json.dumps(signed.to_wire()), "status": status,
                     "received_ms": received_ms},
                )  # fmt: skip
        except IntegrityError:
            raise AlreadyExistsError(
                f"oracle {signed.oracle[:16]}… already reported on task {r.task!r}"
            ) from None

    def reports(self, round_: int, status: str = "pending") -> dict[str, list[SignedReport]]:
        """task -> the signed reports the node holds for it with `status`."""
        out: dict[str, list[SignedReport]] = {}
        for row in self._read(lambda sql: sql.reports, {"at_round": round_, "at_status": status}):
            out.setdefault(row["task"], []).append(SignedReport.from_wire(json.loads(row["wire"])))
        return out

    def report_counts(self) -> dict[str, int]:
        return {r["status"]: int(r["n"]) for r in self._read(lambda sql: sql.report_counts)}

    # --- rounds ----------------------------------------------------------------------------

    def set_round(self, round_: int, phase: str, **record: Any) -> None:
        """Create or update a round's row: its phase, and fields merged into its record.
        `round_totals` changes with it, in the same transaction."""
        with self._write() as (connection, sql):
            old_text = connection.execute(sql.round_record, {"at_round": round_}).scalar()
            if old_text is None:
                connection.execute(
                    sql.new_round,
                    {"round": round_, "phase": phase, "started_ms": now_ms(),
                     "record": json.dumps(record)},
                )  # fmt: skip
                _add_totals(connection, sql, 1, _flows(record))
                return
            old = json.loads(old_text)
            merged = {**old, **record}
            finished = now_ms() if phase in FINAL_PHASES else None
            connection.execute(
                sql.update_round,
                {"at_round": round_, "new_phase": phase, "new_record": json.dumps(merged),
                 "finished": finished},
            )  # fmt: skip
            # A closed round's flows still change as the backlog settles its tasks.
            before, after = _flows(old), _flows(merged)
            _add_totals(connection, sql, 0, {key: after[key] - before[key] for key in FLOWS})

    def round_totals(self) -> tuple[int, dict[str, int]]:
        """How many rounds the board holds, and their token flows (`FLOWS`) summed: one row,
        kept as rounds are written, so its cost does not grow with the number of rounds."""
        row = self._read(lambda sql: sql.totals)[0]
        return int(row["rounds"]), {key: int(row[key]) for key in FLOWS}

    def rounds(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """Round records, newest first."""
        rows = self._read(
            lambda sql: sql.rounds if before is None else sql.rounds_before,
            {"at_most": limit, "before": before},
        )
        return [
            {"round": r["round"], "phase": r["phase"], "started_ms": r["started_ms"],
             "finished_ms": r["finished_ms"], **json.loads(r["record"])}
            for r in rows
        ]  # fmt: skip

    def last_round(self) -> int:
        with self._reading() as (connection, sql):
            return int(connection.execute(sql.last_round).scalar_one())

    def unfinished_rounds(self) -> list[int]:
        return [int(r["round"]) for r in self._read(lambda sql: sql.unfinished)]

    # --- statistics for the dashboard ------------------------------------------------------

    def asset_stats(self, assets: Collection[str] | None = None) -> dict[str, dict[str, int]]:
        """asset -> tasks settled, failed (not paid), late (success out of SLA): of every
        asset, or of those among `assets` (a page of them: read through the asset index)."""
        rows: list[RowMapping] = []
        with self._reading() as (connection, sql):
            if assets is None:
                rows += connection.execute(sql.asset_stats).mappings()
            else:
                for part in in_lists(assets):
                    rows += connection.execute(sql.asset_stats_of, {"at_assets": part}).mappings()
        return {
            r["asset"]: {"settled": int(r["settled"]), "failed": int(r["failed"] or 0),
                         "late": int(r["late"] or 0)}
            for r in rows
        }  # fmt: skip

    def task_counts(self) -> dict[str, int]:
        out = {"open": 0, "settled": 0, "paid": 0, "sla_met": 0}
        for r in self._read(lambda sql: sql.task_counts):
            out[r["status"]] = int(r["n"])
            if r["status"] == "settled":
                out["paid"] = int(r["paid"] or 0)
                out["sla_met"] = int(r["met"] or 0)
        return out

    # --- events ----------------------------------------------------------------------------

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        if not events:
            return
        at = now_ms()
        rows = [{"at_ms": at, "kind": e["kind"], "round": e.get("round"),
                 "body": json.dumps(e, sort_keys=True)} for e in events]  # fmt: skip
        with self._write() as (connection, sql):
            if len(rows) == 1:  # an endpoint's event: its id comes back with it
                last = connection.execute(sql.add_events, rows[0]).inserted_primary_key[0]
            else:
                connection.execute(sql.add_events, rows)
                last = connection.execute(sql.last_event).scalar_one()
            if last % 1000 < len(events):  # now and then, not on every write
                connection.execute(sql.trim_events, {"oldest_kept": last - MAX_EVENTS})

    def events(self, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._read(lambda sql: sql.events, {"after": after, "at_most": limit})
        return [{"id": r["id"], "at_ms": r["at_ms"], **json.loads(r["body"])} for r in rows]

    def last_event(self) -> int:
        with self._reading() as (connection, sql):
            return int(connection.execute(sql.last_event).scalar_one())


def _add_totals(
    connection: Connection, sql: _Statements, rounds: int, flows: dict[str, int]
) -> None:
    if not rounds and not any(flows.values()):
        return
    connection.execute(
        sql.add_totals,
        {"more_rounds": rounds, **{f"more_{key}": flows[key] for key in FLOWS}},
    )


def _parts(
    connection: Connection, part: _Part, rows: Sequence[RowMapping]
) -> dict[tuple[int, str], list[RowMapping]]:
    """The rows of `part` for the tasks `rows`, by task, each task's in the part's order: a
    few statements for a page of tasks, not one per task."""
    if len(rows) == 1:
        key = (rows[0]["round"], rows[0]["task"])
        found = connection.execute(part.of_task, {"at_round": key[0], "at_task": key[1]})
        return {key: found.mappings().all()}
    tasks_of: dict[int, list[str]] = {}
    for row in rows:
        tasks_of.setdefault(row["round"], []).append(row["task"])
    out: dict[tuple[int, str], list[RowMapping]] = {}
    for round_, tasks in tasks_of.items():
        for names in in_lists(tasks):
            found = connection.execute(part.of_tasks, {"at_round": round_, "at_tasks": names})
            for row in found.mappings():
                out.setdefault((round_, row["task"]), []).append(row)
    return out


def _picked(row: RowMapping, names: Sequence[str]) -> dict[str, Any]:
    return {name: row[name] for name in names}


def _views(
    connection: Connection, sql: _Statements, rows: Sequence[RowMapping]
) -> list[dict[str, Any]]:
    """The views of the tasks `rows`, with their parts (`TaskBoard.tasks`)."""
    members = _parts(connection, sql.members, rows)
    claims = _parts(connection, sql.claimed, rows)
    oracles = _parts(connection, sql.reported, rows)
    granted = _parts(connection, sql.granted, rows)
    out = []
    for row in rows:
        key = (row["round"], row["task"])
        verdict = None
        if row["status"] == "settled":
            verdict = {
                "success": bool(row["success"]), "sla_met": bool(row["sla_met"]),
                "paid": bool(row["paid"]), "latency_ms": row["latency_ms"],
                "output": row["output"],
            }  # fmt: skip
        out.append(
            {
                "round": row["round"], "task": row["task"], "request": row["request"],
                "requester": row["requester"], "status": row["status"],
                "workload": row["workload"], "inputs": json.loads(row["inputs"]),
                "deadline_ms": row["deadline_ms"], "charge": row["charge"],
                "opened_ms": row["opened_ms"],
                "assets": [_picked(m, _MEMBER_FIELDS) for m in members.get(key, ())],
                "claims": [_picked(c, _CLAIM_FIELDS) for c in claims.get(key, ())],
                "reported_by": [o["oracle"] for o in oracles.get(key, ())],
                "sealed": list(_sealed(row["sealed"])),
                "granted": [g["asset"] for g in granted.get(key, ())],
                "verdict": verdict, "note": row["note"] or "",
            }
        )  # fmt: skip
    return out


FINAL_PHASES = ("closed", "empty", "rolled_back")
"""A round in one of these phases is over (its tasks, if any, are settled or in the
backlog); any other phase after a restart means the node died inside the round."""


class BoardLog:
    """A `mercat.runtime.events.EventLog` that writes the round's events to the board when
    the round flushes them (so the stream and the dashboard see each stage's events)."""

    def __init__(self, board: TaskBoard) -> None:
        self.board = board
        self._buffer: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self._buffer.append(event.to_dict() if hasattr(event, "to_dict") else dict(event))

    def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        self.board.add_events(buffer)
