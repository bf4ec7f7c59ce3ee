"""offers, request terms, task charges and margin holders, round usage; ledger id

What owners sign moves onto the ledger: an asset's offer (`offers`), a request's terms and
its life cycle (`requests.terms|status|round|served|open_tasks`), a task's charge, served
fraction and margin holder (`tasks.charge|fraction|margin_to`), and per-round server usage.
Every message is now bound to one ledger: a ledger created before this revision gets a
random id added to its configuration.

Requests escrowed before this revision have no terms: those with open tasks are marked
assigned (they close, refunding the rest of their escrow, when their last task settles), the
others stay open (they can be refunded; without terms no round can serve them).

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


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("terms", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="open")
        )
        batch.add_column(sa.Column("round", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("served", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("open_tasks", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("entry_id", id_type, nullable=True))
        batch.create_foreign_key(op.f("fk_requests_entry_id"), "entries", ["entry_id"], ["id"])
        batch.create_check_constraint(
            op.f("ck_requests_status"), "status IN ('open', 'assigned', 'closed')"
        )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("charge", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("fraction", sa.BigInteger(), nullable=False, server_default="1000000000")
        )
        batch.add_column(
            sa.Column("margin_to", sa.String(length=16), nullable=False, server_default="operator")
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
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("margin_to")
        batch.drop_column("fraction")
        batch.drop_column("charge")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint(op.f("ck_requests_status"), type_="check")
        batch.drop_constraint(op.f("fk_requests_entry_id"), type_="foreignkey")
        batch.drop_column("entry_id")
        batch.drop_column("open_tasks")
        batch.drop_column("served")
        batch.drop_column("round")
        batch.drop_column("status")
        batch.drop_column("terms")
