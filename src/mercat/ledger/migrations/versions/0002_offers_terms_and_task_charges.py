"""offers, request terms, task charges and margin holders, round usage; ledger id

What owners sign moves onto the ledger: an asset's offer (`offers`), a request's terms and
its life cycle (`requests.terms|status|round|served|open_tasks`), a task's charge, served
fraction and margin holder (`tasks.charge|fraction|margin_to`), and per-round server usage.
Every message is now bound to one ledger: a ledger created before this revision gets a
random id added to its configuration.

Requests escrowed before this revision have no terms: those with open tasks are marked
assigned (they close, refunding the rest of their escrow, when their last task settles), the
others stay open (they can be refunded; without terms no round can serve them).

Columns are added in place (ALTER TABLE ... ADD COLUMN), not by SQLite's copy-and-rename
batch mode, which cannot drop a table other tables' foreign keys point at while a store holds
data. SQLite then keeps no CHECK on the new `requests.status` (it cannot add one in place);
PostgreSQL gets it.

Revision ID: 0002
Revises: 0001
"""

import json
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("requests", sa.Column("terms", sa.Text(), nullable=True))
    op.add_column(
        "requests", sa.Column("status", sa.String(length=16), nullable=False, server_default="open")
    )
    op.add_column("requests", sa.Column("round", sa.BigInteger(), nullable=True))
    op.add_column(
        "requests", sa.Column("served", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "requests", sa.Column("open_tasks", sa.Integer(), nullable=False, server_default="0")
    )
    if _sqlite():  # SQLite adds a column's foreign key only inline, in raw DDL
        op.execute("ALTER TABLE requests ADD COLUMN entry_id INTEGER REFERENCES entries (id)")
    else:
        op.add_column("requests", sa.Column("entry_id", id_type, nullable=True))
        op.create_foreign_key(
            op.f("fk_requests_entry_id"), "requests", "entries", ["entry_id"], ["id"]
        )
        op.create_check_constraint(
            op.f("ck_requests_status"), "requests", "status IN ('open', 'assigned', 'closed')"
        )
    op.add_column("tasks", sa.Column("charge", sa.BigInteger(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("fraction", sa.BigInteger(), nullable=False, server_default="1000000000"),
    )
    op.add_column(
        "tasks",
        sa.Column("margin_to", sa.String(length=16), nullable=False, server_default="operator"),
    )
    op.create_table(
        "offers",
        sa.Column("asset", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offer", sa.Text(), nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=True),
        sa.Column("entry_id", id_type, nullable=False),
        sa.ForeignKeyConstraint(["asset"], ["assets.id"], name=op.f("fk_offers_asset")),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_offers_entry_id")),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_offers")),
        sa.UniqueConstraint("cid", name=op.f("uq_offers_cid")),
    )
    op.create_table(
        "round_usage",
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=64), nullable=False),
        sa.Column("units", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["asset"], ["assets.id"], name=op.f("fk_round_usage_asset")),
        sa.PrimaryKeyConstraint("round", "asset", name=op.f("pk_round_usage")),
    )
    # Requests from before: the ones with open tasks are being served.
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "UPDATE requests SET status = 'assigned', open_tasks = ("
            " SELECT COUNT(*) FROM tasks WHERE tasks.request = requests.id"
            " AND tasks.status = 'open') WHERE EXISTS ("
            " SELECT 1 FROM tasks WHERE tasks.request = requests.id AND tasks.status = 'open')"
        )
    )
    # Bind the ledger's messages to an id of its own.
    row = connection.execute(sa.text("SELECT config FROM ledger_meta WHERE id = 1")).first()
    if row is not None:
        config = json.loads(row[0])
        if not config.get("ledger_id"):
            config["ledger_id"] = secrets.token_hex(16)
            connection.execute(
                sa.text("UPDATE ledger_meta SET config = :c WHERE id = 1"),
                {"c": json.dumps(config, sort_keys=True)},
            )


def downgrade() -> None:
    op.drop_table("round_usage")
    op.drop_table("offers")
    for table, columns in (
        ("tasks", ("margin_to", "fraction", "charge")),
        ("requests", ("entry_id", "open_tasks", "served", "round", "status", "terms")),
    ):
        if not _sqlite():
            if table == "requests":
                op.drop_constraint(op.f("ck_requests_status"), "requests", type_="check")
                op.drop_constraint(op.f("fk_requests_entry_id"), "requests", type_="foreignkey")
            for column in columns:
                op.drop_column(table, column)
            continue
        with op.batch_alter_table(table) as batch:  # SQLite drops columns by copying the table
            for column in columns:
                batch.drop_column(column)
