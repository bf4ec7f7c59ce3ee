"""The ledger's tables (SQLAlchemy Core). The Alembic revisions create exactly these.

Money lives in `books`: one row per balance, `balance` in base units. The only book allowed
below zero is `world`, the counterpart of deposits and withdrawals: its balance is minus
the supply in circulation, so the sum of all books is zero at every commit. Every change
of a balance is a `posting` of an `entry`; the postings of an entry sum to zero (double
entry). Every accepted message is one entry (even one that moves nothing, such as opening
an account), with its signed payload: the journal is also the audit log, and the unique
(signer, nonce) of entries is the replay guard.

Book names: `world`, `pool` (collective rewards and penalties), `avail:<key>` (spendable),
`unbond:<key>` (unstaked, waiting), `stake:<asset>`, `escrow:<request>`,
`hold:<round>:<task>` (a task's price, held between opening and settlement); see
`mercat.runtime.accounts`.

What owners signed is kept beside the books: an asset's current `offers` row, a request's
`terms` (both the canonical JSON of the signed object, with the entry that carried it), and
each task's charge, fraction and margin holder. `round_usage` holds what a round's open
tasks take of each server (capacity and fixed cost are per round).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite autoincrements only an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
Id = BigInteger().with_variant(Integer(), "sqlite")
Key = String(64)  # an Ed25519 public key in hex
Name = String(64)  # asset, request and task ids
BookName = String(160)

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

meta = Table(
    "ledger_meta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("config", Text, nullable=False),
    Column("round", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("key", Key, primary_key=True),
    Column("role", String(16), nullable=False),
    CheckConstraint("role IN ('operator', 'user', 'oracle')", name="role"),
)

books = Table(
    "books",
    metadata,
    Column("name", BookName, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("balance", BigInteger, nullable=False),
    CheckConstraint("balance >= 0 OR kind = 'world'", name="non_negative"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("op", String(24), nullable=False),
    Column("signer", Key, nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("signature", String(128), nullable=False),
    UniqueConstraint("signer", "nonce", name="uq_entries_signer_nonce"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False, index=True),
    Column("book", BookName, ForeignKey("books.name"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount <> 0", name="non_zero"),
)

assets = Table(
    "assets",
    metadata,
    Column("id", Name, primary_key=True),
    Column("owner", Key, ForeignKey("accounts.key"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    CheckConstraint("status IN ('active', 'removed', 'retired', 'replaced')", name="status"),
)

requests = Table(
    "requests",
    metadata,
    Column("id", Name, primary_key=True),
    Column("owner", Key, ForeignKey("accounts.key"), nullable=False),
    # The signed terms (canonical JSON); null for a request escrowed before terms existed.
    Column("terms", Text, nullable=True),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("round", BigInteger, nullable=True),  # the round its tasks opened in
    Column("served", BigInteger, nullable=False, server_default="0"),  # PPB of its demand
    Column("open_tasks", Integer, nullable=False, server_default="0"),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=True),
    CheckConstraint("status IN ('open', 'assigned', 'closed')", name="status"),
)

offers = Table(
    "offers",
    metadata,
    Column("asset", Name, ForeignKey("assets.id"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("offer", Text, nullable=False),  # the signed offer (canonical JSON)
    Column("cid", String(128), nullable=True, unique=True),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False),
)

round_usage = Table(
    "round_usage",
    metadata,
    Column("round", BigInteger, nullable=False),
    Column("asset", Name, ForeignKey("assets.id"), nullable=False),
    Column("units", Text, nullable=False),  # {resource: Σ demand·fraction} as JSON
    PrimaryKeyConstraint("round", "asset"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("round", BigInteger, nullable=False),
    Column("task", Name, nullable=False),
    Column("request", Name, ForeignKey("requests.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("opened_entry", Id, ForeignKey("entries.id"), nullable=False),
    Column("settled_entry", Id, ForeignKey("entries.id"), nullable=True),
    Column("success", Boolean, nullable=True),
    Column("sla_met", Boolean, nullable=True),
    Column("latency_ms", BigInteger, nullable=True),
    Column("digest", String(128), nullable=True),
    # What the operator signed beyond the payouts (defaults: a task opened before they existed).
    Column("charge", BigInteger, nullable=True),  # null: the sum of its payouts
    Column("fraction", BigInteger, nullable=False, server_default="1000000000"),
    Column("margin_to", String(16), nullable=False, server_default="operator"),
    PrimaryKeyConstraint("round", "task"),
    CheckConstraint("status IN ('open', 'settled')", name="status"),
)

task_assets = Table(
    "task_assets",
    metadata,
    Column("round", BigInteger, nullable=False),
    Column("task", Name, nullable=False),
    Column("position", Integer, nullable=False),
    Column("asset", Name, ForeignKey("assets.id"), nullable=False, index=True),
    Column("payout", BigInteger, nullable=False),
    # What settlement did to this asset (null while the task is open).
    Column("stake_before", BigInteger, nullable=True),
    Column("stake_after", BigInteger, nullable=True),
    Column("removed", Boolean, nullable=True),
    PrimaryKeyConstraint("round", "task", "position"),
)

oracle_reports = Table(
    "oracle_reports",
    metadata,
    Column("round", BigInteger, nullable=False),
    Column("task", Name, nullable=False),
    Column("oracle", Key, ForeignKey("accounts.key"), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("sla_met", Boolean, nullable=False),
    Column("latency_ms", BigInteger, nullable=False),
    Column("digest", String(128), nullable=True),
    Column("signature", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False),
    PrimaryKeyConstraint("round", "task", "oracle"),
    CheckConstraint("status IN ('pending', 'agree', 'disagree', 'late')", name="status"),
)

unbondings = Table(
    "unbondings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("owner", Key, ForeignKey("accounts.key"), nullable=False, index=True),
    Column("asset", Name, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("release_round", BigInteger, nullable=False),
    Column("released_entry", Id, ForeignKey("entries.id"), nullable=True),
    CheckConstraint("amount > 0", name="positive"),
)
