"""The task board's tables (SQLAlchemy Core), on SQLite or PostgreSQL.

Their names and columns are those of the boards written before the board ran on SQLAlchemy
(raw `sqlite3`), so a board file an older node left opens as it is: nothing to migrate.
What the tables hold is told in `mercat.node.board`.

Types: integers are 64-bit on PostgreSQL (times in ms and amounts in base units pass 2^31)
and SQLite's INTEGER there, which keeps `rounds.round` and `events.id` SQLite's row ids;
flags are booleans (0 and 1 in SQLite, as the older boards stored them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

Int = BigInteger().with_variant(Integer(), "sqlite")

FLOWS = ("charged", "payouts", "margin", "refunded", "rewards", "penalties")
"""A round record's token flows (base units): `round_totals` sums them over every round."""

metadata = MetaData()

rounds = Table(
    "rounds",
    metadata,
    Column("round", Int, primary_key=True, autoincrement=False),
    Column("phase", Text, nullable=False),
    Column("started_ms", Int),
    Column("finished_ms", Int),
    Column("record", Text, nullable=False, server_default="{}"),
)

round_totals = Table(
    "round_totals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rounds", Int, nullable=False),
    *(Column(flow, Int, nullable=False) for flow in FLOWS),
    CheckConstraint("id = 1"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("round", Int, nullable=False),
    Column("task", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("requester", Text),
    Column("workload", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("deadline_ms", Int, nullable=False),
    Column("charge", Int, nullable=False),
    Column("opened_ms", Int, nullable=False),
    Column("status", Text, nullable=False),
    Column("success", Boolean),
    Column("sla_met", Boolean),
    Column("paid", Boolean),
    Column("latency_ms", Int),
    Column("output", Text),
    Column("settled_ms", Int),
    Column("note", Text),
    # Added to older boards by `ALTER TABLE` when they are opened (`ADDED_COLUMNS`).
    Column("sealed", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("round", "task"),
)
Index("tasks_status", tasks.c.status)
Index("tasks_requester", tasks.c.requester)
Index("tasks_request", tasks.c.request)

task_assets = Table(
    "task_assets",
    metadata,
    Column("round", Int, nullable=False),
    Column("task", Text, nullable=False),
    Column("position", Int, nullable=False),
    Column("asset", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payout", Int, nullable=False),
    PrimaryKeyConstraint("round", "task", "asset"),
)
Index("task_assets_asset", task_assets.c.asset)
Index("task_assets_owner", task_assets.c.owner)

claims = Table(
    "claims",
    metadata,
    Column("round", Int, nullable=False),
    Column("task", Text, nullable=False),
    Column("asset", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("output", Text),
    Column("run_ms", Int, nullable=False),
    Column("error", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("received_ms", Int, nullable=False),
    PrimaryKeyConstraint("round", "task", "asset"),
)

reports = Table(
    "reports",
    metadata,
    Column("round", Int, nullable=False),
    Column("task", Text, nullable=False),
    Column("oracle", Text, nullable=False),
    Column("wire", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("received_ms", Int, nullable=False),
    PrimaryKeyConstraint("round", "task", "oracle"),
)

key_grants = Table(
    "key_grants",
    metadata,
    Column("round", Int, nullable=False),
    Column("task", Text, nullable=False),
    Column("asset", Text, nullable=False),
    Column("wire", Text, nullable=False),
    Column("received_ms", Int, nullable=False),
    PrimaryKeyConstraint("round", "task", "asset"),
)

events = Table(
    "events",
    metadata,
    # Never given twice (SQLite: AUTOINCREMENT; PostgreSQL: a sequence): readers follow
    # the stream by id (`events(after=...)`).
    Column("id", Int, primary_key=True, autoincrement=True),
    Column("at_ms", Int, nullable=False),
    Column("kind", Text, nullable=False),
    Column("round", Int),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,
)

ADDED_COLUMNS = {"tasks": ("sealed",)}
"""Columns that boards written by older nodes lack: added when such a board is opened."""
