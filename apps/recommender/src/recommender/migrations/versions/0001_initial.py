"""The recommender's schema: items (versioned), tombstones, catalogue state, events, rankings.

Adopts a SQLite file made before Alembic (raw ``CREATE TABLE IF NOT EXISTS``): only what
is missing is created, and old item rows get a catalogue position (their rowid order) and
version 0.

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


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())

    if "items" not in tables:
        op.create_table(
            "items",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("categories", sa.Text, nullable=False),
            sa.Column("features", sa.Text, nullable=False),
            sa.Column("created_at", sa.Double, nullable=True),
            sa.Column("encoder", sa.Text, nullable=True),
            sa.Column("embedding", sa.LargeBinary, nullable=True),
            sa.Column("updated_at", sa.Double, nullable=False),
            sa.Column("position", sa.BigInteger, nullable=True),
            sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        )
        had_items = False
    else:  # a pre-Alembic SQLite file: add the columns it lacks
        columns = {c["name"] for c in inspector.get_columns("items")}
        if "position" not in columns:
            op.add_column("items", sa.Column("position", sa.BigInteger, nullable=True))
            if bind.dialect.name == "sqlite":  # keep the old catalogue order
                op.execute("UPDATE items SET position = rowid")
        if "version" not in columns:
            op.add_column(
                "items", sa.Column("version", sa.BigInteger, nullable=False, server_default="0")
            )
        had_items = bind.execute(sa.text("SELECT COUNT(*) FROM items")).scalar_one() > 0
    _index("items", "items_version", ["version"], inspector, tables)

    if "deleted_items" not in tables:
        op.create_table(
            "deleted_items",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("version", sa.BigInteger, nullable=False),
        )
    _index("deleted_items", "deleted_items_version", ["version"], inspector, tables)

    if "catalogue_state" not in tables:
        state = op.create_table(
            "catalogue_state",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("version", sa.BigInteger, nullable=False),
            sa.Column("seeded", sa.Boolean, nullable=False),
        )
        # an adopted file already holds the items ``prepare`` wrote
        op.bulk_insert(state, [{"id": 1, "version": 0, "seeded": had_items}])

    if "events" not in tables:
        op.create_table(
            "events",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("user_id", sa.Text, nullable=False),
            sa.Column("item_id", sa.Text, nullable=False),
            sa.Column("type", sa.Text, nullable=False),
            sa.Column("timestamp", sa.Double, nullable=False),
            sa.Column("bucket", sa.Text),
            sa.Column("request_id", sa.Text),
            sa.Column("position", sa.Integer),
            sa.Column("value", sa.Double),
            sqlite_autoincrement=True,
        )
    _index("events", "events_user", ["user_id", "timestamp"], inspector, tables)

    if "rankings" not in tables:
        op.create_table(
            "rankings",
            sa.Column("request_id", sa.Text, primary_key=True),
            sa.Column("user_id", sa.Text),
            sa.Column("bucket", sa.Text, nullable=False),
            sa.Column("endpoint", sa.Text, nullable=False),
            sa.Column("timestamp", sa.Double, nullable=False),
            sa.Column("item_ids", sa.Text, nullable=False),
        )
    _index("rankings", "rankings_timestamp", ["timestamp"], inspector, tables)


def _index(
    table: str, name: str, columns: list[str], inspector: sa.Inspector, tables: set[str]
) -> None:
    existing = {ix["name"] for ix in inspector.get_indexes(table)} if table in tables else set()
    if name not in existing:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name in ("rankings", "events", "catalogue_state", "deleted_items", "items"):
        op.drop_table(name)
