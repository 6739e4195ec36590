"""The finance monitor's schema: checkpoints with partition owners (epochs), alerts,
silences, rules, meta, trend points, per-receiver deliveries.

Adopts a SQLite file made before Alembic (raw ``CREATE TABLE IF NOT EXISTS``): only the
missing tables, columns and indexes are created.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.Double


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())

    def table(name: str, *columns: sa.SchemaItem, **kw: object) -> None:
        if name not in tables:
            op.create_table(name, *columns, **kw)

    def index(table_name: str, name: str, columns: list[str]) -> None:
        existing = (
            {ix["name"] for ix in inspector.get_indexes(table_name)}
            if table_name in tables
            else set()
        )
        if name not in existing:
            op.create_index(name, table_name, columns)

    table(
        "checkpoints",
        sa.Column("consumer_group", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    table(
        "partition_owners",
        sa.Column("consumer_group", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("claimed_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    # Insertion order: an identity column on PostgreSQL; SQLite orders by rowid.
    seq = (
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False)
        if postgres
        else sa.Column("seq", sa.BigInteger, nullable=True)
    )
    if "alerts" in tables:
        if "seq" not in {c["name"] for c in inspector.get_columns("alerts")}:
            op.add_column("alerts", sa.Column("seq", sa.BigInteger, nullable=True))
    else:
        op.create_table(
            "alerts",
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("rule_id", sa.Text, nullable=False),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("series", sa.Text, nullable=False),
            sa.Column("severity", sa.Text, nullable=False),
            sa.Column("window_spec", sa.Text, nullable=False),
            sa.Column("window_start", TIME, nullable=False),
            sa.Column("window_end", TIME, nullable=False),
            sa.Column("value", sa.Double, nullable=False),
            sa.Column("baseline", sa.Double, nullable=False),
            sa.Column("threshold", sa.Double, nullable=False),
            sa.Column("volume", sa.Integer, nullable=False),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("labels", sa.Text, nullable=False),
            sa.Column("created_at", TIME, nullable=False),
            sa.Column("status", sa.Text, nullable=False, server_default="firing"),
            sa.Column("ack_by", sa.Text),
            sa.Column("ack_at", TIME),
            sa.Column("dispatch_state", sa.Text, nullable=False, server_default="pending"),
            sa.Column("dispatch_owner", sa.Text),
            sa.Column("dispatch_attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("dispatch_error", sa.Text),
            sa.Column("sent_at", TIME),
            seq,
        )
        if postgres:
            op.create_index("alerts_seq", "alerts", ["seq"], unique=True)
    index("alerts", "alerts_dispatch", ["dispatch_state", "created_at"])
    table(
        "silences",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("matchers", sa.Text, nullable=False),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    table(
        "rules",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    table(
        "trend_points",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("series", sa.Text, nullable=False),
        sa.Column("start", TIME, nullable=False),
        sa.Column("end", TIME, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("negative", sa.Integer, nullable=False),
        sa.Column("neutral", sa.Integer, nullable=False),
        sa.Column("positive", sa.Integer, nullable=False),
        sa.Column("negative_share", sa.Double, nullable=False),
        sa.Column("sentiment_index", sa.Double, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("spec", "series", "start"),
        sqlite_autoincrement=True,
    )
    index("trend_points", "trend_points_created", ["created_at"])
    table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("receiver_label", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("claimed_by", sa.Text),
        sa.Column("claimed_at", TIME),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("sent_at", TIME),
        sqlite_autoincrement=True,
    )
    index("deliveries", "deliveries_due", ["receiver", "state", "next_attempt_at"])
    table(
        "delivery_alerts",
        sa.Column("alert_key", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("alert_key", "delivery_id"),
    )
    index("delivery_alerts", "delivery_alerts_delivery", ["delivery_id"])


def downgrade() -> None:
    for name in (
        "delivery_alerts",
        "deliveries",
        "trend_points",
        "meta",
        "rules",
        "silences",
        "alerts",
        "partition_owners",
        "checkpoints",
    ):
        op.drop_table(name)
