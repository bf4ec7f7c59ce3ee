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
board lacks from it after a crash (`mercat.node.round_loop`). One SQLite connection
(WAL, a file or in memory) behind a lock: the node is the board's only process, and every
operation on it is a few rows. `changed` wakes the threads that wait for news (the round
loop waiting for claims and reports).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercat.errors import AlreadyExistsError
from mercat.ledger.ledger import in_lists
from mercat.node.claims import SignedClaim
from mercat.node.sealing import SignedGrant
from mercat.oracle.report import SignedReport

MAX_EVENTS = 20_000
FLOWS = ("charged", "payouts", "margin", "refunded", "rewards", "penalties")
"""A round record's token flows (base units): `round_totals` sums them over every round."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, phase TEXT NOT NULL, started_ms INTEGER, finished_ms INTEGER,
    record TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS round_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), rounds INTEGER NOT NULL,
    charged INTEGER NOT NULL, payouts INTEGER NOT NULL, margin INTEGER NOT NULL,
    refunded INTEGER NOT NULL, rewards INTEGER NOT NULL, penalties INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    round INTEGER NOT NULL, task TEXT NOT NULL, request TEXT NOT NULL, requester TEXT,
    workload TEXT NOT NULL, inputs TEXT NOT NULL, deadline_ms INTEGER NOT NULL,
    charge INTEGER NOT NULL, opened_ms INTEGER NOT NULL, status TEXT NOT NULL,
    success INTEGER, sla_met INTEGER, paid INTEGER, latency_ms INTEGER, output TEXT,
    settled_ms INTEGER, note TEXT, PRIMARY KEY (round, task)
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_requester ON tasks (requester);
CREATE INDEX IF NOT EXISTS tasks_request ON tasks (request);
CREATE TABLE IF NOT EXISTS task_assets (
    round INTEGER NOT NULL, task TEXT NOT NULL, position INTEGER NOT NULL, asset TEXT NOT NULL,
    owner TEXT NOT NULL, kind TEXT NOT NULL, payout INTEGER NOT NULL,
    PRIMARY KEY (round, task, asset)
);
CREATE INDEX IF NOT EXISTS task_assets_asset ON task_assets (asset);
CREATE INDEX IF NOT EXISTS task_assets_owner ON task_assets (owner);
CREATE TABLE IF NOT EXISTS claims (
    round INTEGER NOT NULL, task TEXT NOT NULL, asset TEXT NOT NULL, owner TEXT NOT NULL,
    success INTEGER NOT NULL, output TEXT, run_ms INTEGER NOT NULL, error TEXT NOT NULL,
    signature TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, asset)
);
CREATE TABLE IF NOT EXISTS reports (
    round INTEGER NOT NULL, task TEXT NOT NULL, oracle TEXT NOT NULL, wire TEXT NOT NULL,
    status TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, oracle)
);
CREATE TABLE IF NOT EXISTS key_grants (
    round INTEGER NOT NULL, task TEXT NOT NULL, asset TEXT NOT NULL, wire TEXT NOT NULL,
    received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, asset)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
    round INTEGER, body TEXT NOT NULL
);
"""


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


class TaskBoard:
    """See the module docstring. `path`: a SQLite file, or None for memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.RLock()
        self.changed = threading.Condition(threading.Lock())
        self.version = 0
        self._db: sqlite3.Connection | None = None
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        """The connection, opened again after `close` (call with the lock held): a node's
        app that is shut down and started again (its lifespan closes the board, as it
        closes the ledger) serves on. A board in memory starts empty again."""
        if self._db is None:
            db = sqlite3.connect(
                ":memory:" if self.path is None else str(self.path),
                check_same_thread=False,
                timeout=30,
            )
            db.row_factory = sqlite3.Row
            if self.path is not None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(tasks)")}
            if "sealed" not in columns:  # a board written before sealed requests
                db.execute("ALTER TABLE tasks ADD COLUMN sealed TEXT NOT NULL DEFAULT ''")
            if db.execute("SELECT 1 FROM round_totals").fetchone() is None:
                # A new board, or one written before the totals were kept: summed once from
                # its rounds, then kept by `set_round`.
                count, sums = 0, dict.fromkeys(FLOWS, 0)
                for row in db.execute("SELECT record FROM rounds"):
                    count += 1
                    for key, value in _flows(json.loads(row["record"])).items():
                        sums[key] += value
                db.execute(
                    f"INSERT INTO round_totals (id, rounds, {', '.join(FLOWS)}) "
                    f"VALUES (1, ?, {', '.join('?' * len(FLOWS))})",
                    (count, *sums.values()),
                )
            db.commit()
            self._db = db
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connection()
            try:
                yield db
                db.commit()
            except BaseException:
                db.rollback()
                raise
        self._notify()

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

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
        with self._write() as db:
            for t in tasks:
                db.execute(
                    "INSERT OR IGNORE INTO tasks (round, task, request, requester, workload, "
                    "inputs, deadline_ms, charge, opened_ms, status, sealed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                    (t.round, t.task, t.request, t.requester, t.workload,
                     json.dumps(list(t.inputs)), t.deadline_ms, t.charge, opened_ms,
                     ",".join(sorted(t.sealed))),
                )  # fmt: skip
                db.executemany(
                    "INSERT OR IGNORE INTO task_assets VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(t.round, t.task, i, a.asset, a.owner, a.kind, a.payout)
                     for i, a in enumerate(t.assets)],
                )  # fmt: skip

    def note_tasks(self, round_: int, notes: dict[str, str]) -> None:
        """Say why tasks failed (or were late), for people: the claims' judgement
        (`mercat.node.sla`), then, at settlement, where the oracles found otherwise."""
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET note=? WHERE round=? AND task=?",
                [(note[:300], round_, task) for task, note in notes.items()],
            )

    def has_task(self, round_: int, task: str) -> bool:
        return bool(self._read("SELECT 1 FROM tasks WHERE round=? AND task=?", (round_, task)))

    def settle_tasks(self, round_: int, verdicts: dict[str, Verdict]) -> None:
        """Record the verdicts of settled tasks; their unsettled reports become `settled`."""
        at = now_ms()
        with self._write() as db:
            for task, v in verdicts.items():
                db.execute(
                    "UPDATE tasks SET status='settled', success=?, sla_met=?, paid=?, "
                    "latency_ms=?, output=?, settled_ms=? WHERE round=? AND task=?",
                    (v.success, v.sla_met, v.paid, v.latency_ms, v.output, at, round_, task),
                )
                db.execute(
                    "UPDATE reports SET status='settled' WHERE round=? AND task=? "
                    "AND status='pending'",
                    (round_, task),
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
        where: list[str] = []
        args: list[Any] = []
        if after is not None:
            where.append(f"(t.round {'>' if oldest else '<'} ? OR (t.round = ? AND t.task > ?))")
            args += [after[0], after[0], after[1]]
        if round_ is not None:
            where.append("t.round = ?")
            args.append(round_)
        if status is not None:
            where.append("t.status = ?")
            args.append(status)
        if requester is not None:
            where.append("t.requester = ?")
            args.append(requester)
        if request is not None:
            where.append("t.request = ?")
            args.append(request)
        if assignee is not None:
            where.append(
                "EXISTS (SELECT 1 FROM task_assets a WHERE a.round = t.round AND a.task = t.task "
                "AND (a.asset = ? OR a.owner = ?))"
            )
            args += [assignee, assignee]
        sql = "SELECT * FROM tasks t"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY t.round {'ASC' if oldest else 'DESC'}, t.task LIMIT ?"
        rows = self._read(sql, [*args, limit])
        return self._views(rows)

    def task(self, round_: int, task: str) -> dict[str, Any] | None:
        views = self._views(self._read("SELECT * FROM tasks WHERE round=? AND task=?",
                                       (round_, task)))  # fmt: skip
        return views[0] if views else None

    def open_rounds(self) -> list[int]:
        rows = self._read("SELECT DISTINCT round FROM tasks WHERE status='open' ORDER BY round")
        return [int(r["round"]) for r in rows]

    def open_tasks_of(self, round_: int) -> list[BoardTask]:
        """The round's open tasks as they were put on the board."""
        rows = self._read("SELECT * FROM tasks WHERE round=? AND status='open' ORDER BY task",
                          (round_,))  # fmt: skip
        out = []
        for row in rows:
            members = self._read(
                "SELECT * FROM task_assets WHERE round=? AND task=? ORDER BY position",
                (round_, row["task"]),
            )
            out.append(
                BoardTask(
                    row["round"], row["task"], row["request"], row["requester"], row["workload"],
                    tuple(json.loads(row["inputs"])), row["deadline_ms"], row["charge"],
                    tuple(BoundAsset(m["asset"], m["owner"], m["kind"], m["payout"])
                          for m in members), _sealed(row["sealed"]),
                )
            )  # fmt: skip
        return out

    def opened_ms(self, round_: int, tasks: Sequence[str]) -> dict[str, int]:
        rows = self._read("SELECT task, opened_ms FROM tasks WHERE round=?", (round_,))
        wanted = set(tasks)
        return {r["task"]: int(r["opened_ms"]) for r in rows if r["task"] in wanted}

    def _views(self, rows: Sequence[sqlite3.Row]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            key = (row["round"], row["task"])
            members = self._read(
                "SELECT asset, owner, kind, payout FROM task_assets WHERE round=? AND task=? "
                "ORDER BY position",
                key,
            )
            claims = self._read(
                "SELECT asset, owner, success, output, run_ms, error, received_ms FROM claims "
                "WHERE round=? AND task=? ORDER BY asset",
                key,
            )
            oracles = self._read(
                "SELECT oracle FROM reports WHERE round=? AND task=? ORDER BY oracle", key
            )
            granted = self._read(
                "SELECT asset FROM key_grants WHERE round=? AND task=? ORDER BY asset", key
            )
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
                    "assets": [dict(m) for m in members],
                    "claims": [{**dict(c), "success": bool(c["success"])} for c in claims],
                    "reported_by": [o["oracle"] for o in oracles],
                    "sealed": list(_sealed(row["sealed"])),
                    "granted": [g["asset"] for g in granted],
                    "verdict": verdict, "note": row["note"] or "",
                }
            )  # fmt: skip
        return out

    # --- key grants (mercat.node.sealing) ---------------------------------------------------

    def add_grant(self, signed: SignedGrant, received_ms: int) -> None:
        """AlreadyExistsError if this replica of the task has its keys already."""
        g = signed.grant
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO key_grants VALUES (?, ?, ?, ?, ?)",
                    (g.round, g.task, g.asset, json.dumps(signed.to_wire()), received_ms),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(
                f"{g.asset!r} has its keys for task {g.task!r} already"
            ) from None

    def grants(self, round_: int, task: str, asset: str | None = None) -> list[dict[str, Any]]:
        """The grants relayed for a task (wire form), or for one of its servers."""
        rows = self._read(
            "SELECT wire FROM key_grants WHERE round=? AND task=? AND (? IS NULL OR asset=?) "
            "ORDER BY asset",
            (round_, task, asset, asset),
        )
        return [json.loads(r["wire"]) for r in rows]

    # --- claims and reports ----------------------------------------------------------------

    def add_claim(self, signed: SignedClaim, received_ms: int) -> None:
        """AlreadyExistsError if this replica of the task has a claim already."""
        c = signed.claim
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.round, c.task, c.asset, signed.owner, c.success, c.output, c.run_ms,
                     c.error, signed.signature.hex(), received_ms),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(
                f"asset {c.asset!r} already has a claim on task {c.task!r} of round {c.round}"
            ) from None

    def claims(self, round_: int) -> dict[str, dict[str, tuple[bool, str | None, int]]]:
        """task -> asset -> (success, output CID, received_ms), for the round's claims."""
        out: dict[str, dict[str, tuple[bool, str | None, int]]] = {}
        for r in self._read(
            "SELECT task, asset, success, output, received_ms FROM claims WHERE round=?",
            (round_,),
        ):
            out.setdefault(r["task"], {})[r["asset"]] = (
                bool(r["success"]), r["output"], int(r["received_ms"])
            )  # fmt: skip
        return out

    def add_report(self, signed: SignedReport, status: str, received_ms: int) -> None:
        """AlreadyExistsError if this oracle has reported on the task already."""
        r = signed.report
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?)",
                    (r.round, r.task, signed.oracle, json.dumps(signed.to_wire()), status,
                     received_ms),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(
                f"oracle {signed.oracle[:16]}… already reported on task {r.task!r}"
            ) from None

    def reports(self, round_: int, status: str = "pending") -> dict[str, list[SignedReport]]:
        """task -> the signed reports the node holds for it with `status`."""
        out: dict[str, list[SignedReport]] = {}
        for row in self._read(
            "SELECT task, wire FROM reports WHERE round=? AND status=? ORDER BY oracle",
            (round_, status),
        ):
            out.setdefault(row["task"], []).append(SignedReport.from_wire(json.loads(row["wire"])))
        return out

    def report_counts(self) -> dict[str, int]:
        rows = self._read("SELECT status, COUNT(*) AS n FROM reports GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    # --- rounds ----------------------------------------------------------------------------

    def set_round(self, round_: int, phase: str, **record: Any) -> None:
        """Create or update a round's row: its phase, and fields merged into its record.
        `round_totals` changes with it, in the same transaction."""
        with self._write() as db:
            row = db.execute("SELECT record FROM rounds WHERE round=?", (round_,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO rounds (round, phase, started_ms, record) VALUES (?, ?, ?, ?)",
                    (round_, phase, now_ms(), json.dumps(record)),
                )
                self._add_totals(db, 1, _flows(record))
                return
            old = json.loads(row["record"])
            merged = {**old, **record}
            finished = now_ms() if phase in FINAL_PHASES else None
            db.execute(
                "UPDATE rounds SET phase=?, record=?, finished_ms=COALESCE(?, finished_ms) "
                "WHERE round=?",
                (phase, json.dumps(merged), finished, round_),
            )
            # A closed round's flows still change as the backlog settles its tasks.
            before, after = _flows(old), _flows(merged)
            self._add_totals(db, 0, {key: after[key] - before[key] for key in FLOWS})

    @staticmethod
    def _add_totals(db: sqlite3.Connection, rounds: int, flows: dict[str, int]) -> None:
        if not rounds and not any(flows.values()):
            return
        db.execute(
            "UPDATE round_totals SET rounds = rounds + ?, "
            + ", ".join(f"{key} = {key} + ?" for key in FLOWS)
            + " WHERE id = 1",
            (rounds, *(flows[key] for key in FLOWS)),
        )

    def round_totals(self) -> tuple[int, dict[str, int]]:
        """How many rounds the board holds, and their token flows (`FLOWS`) summed: one row,
        kept as rounds are written, so its cost does not grow with the number of rounds."""
        row = self._read(f"SELECT rounds, {', '.join(FLOWS)} FROM round_totals WHERE id = 1")[0]
        return int(row["rounds"]), {key: int(row[key]) for key in FLOWS}

    def rounds(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """Round records, newest first."""
        sql = "SELECT * FROM rounds"
        args: list[Any] = []
        if before is not None:
            sql += " WHERE round < ?"
            args.append(before)
        rows = self._read(sql + " ORDER BY round DESC LIMIT ?", [*args, limit])
        return [
            {"round": r["round"], "phase": r["phase"], "started_ms": r["started_ms"],
             "finished_ms": r["finished_ms"], **json.loads(r["record"])}
            for r in rows
        ]  # fmt: skip

    def last_round(self) -> int:
        rows = self._read("SELECT MAX(round) AS r FROM rounds")
        return int(rows[0]["r"] or 0)

    def unfinished_rounds(self) -> list[int]:
        marks = ",".join("?" * len(FINAL_PHASES))
        rows = self._read(f"SELECT round FROM rounds WHERE phase NOT IN ({marks})", FINAL_PHASES)
        return [int(r["round"]) for r in rows]

    # --- statistics for the dashboard ------------------------------------------------------

    def asset_stats(self, assets: Collection[str] | None = None) -> dict[str, dict[str, int]]:
        """asset -> tasks settled, failed (not paid), late (success out of SLA): of every
        asset, or of those among `assets` (a page of them: read through the asset index)."""
        sql = (
            "SELECT a.asset AS asset, COUNT(*) AS settled, "
            "SUM(CASE WHEN t.paid THEN 0 ELSE 1 END) AS failed, "
            "SUM(CASE WHEN t.success AND NOT t.sla_met THEN 1 ELSE 0 END) AS late "
            "FROM task_assets a JOIN tasks t ON t.round = a.round AND t.task = a.task "
            "WHERE t.status = 'settled'{among} GROUP BY a.asset"
        )
        if assets is None:
            rows = self._read(sql.format(among=""))
        else:
            rows = []
            for part in in_lists(assets):
                among = f" AND a.asset IN ({','.join('?' * len(part))})"
                rows += self._read(sql.format(among=among), part)
        return {
            r["asset"]: {"settled": int(r["settled"]), "failed": int(r["failed"] or 0),
                         "late": int(r["late"] or 0)}
            for r in rows
        }  # fmt: skip

    def task_counts(self) -> dict[str, int]:
        rows = self._read(
            "SELECT status, COUNT(*) AS n, SUM(CASE WHEN paid THEN 1 ELSE 0 END) AS paid, "
            "SUM(CASE WHEN sla_met THEN 1 ELSE 0 END) AS met FROM tasks GROUP BY status"
        )
        out = {"open": 0, "settled": 0, "paid": 0, "sla_met": 0}
        for r in rows:
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
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (at_ms, kind, round, body) VALUES (?, ?, ?, ?)",
                [(at, e["kind"], e.get("round"), json.dumps(e, sort_keys=True)) for e in events],
            )
            last = db.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
            if last % 1000 < len(events):  # now and then, not on every write
                db.execute("DELETE FROM events WHERE id <= ?", (last - MAX_EVENTS,))

    def events(self, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT id, at_ms, body FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [{"id": r["id"], "at_ms": r["at_ms"], **json.loads(r["body"])} for r in rows]

    def last_event(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(id), 0) AS n FROM events")[0]["n"])


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
