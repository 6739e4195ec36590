"""Intent corrections: agents' labels for customer messages, a versioned training set.

``intent_corrections`` (one row per corrected message; an intent or out of scope;
tombstones for deletions) and ``corrections_state`` (one row: the dataset version,
bumped by every change).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "intent_corrections" not in tables:
        op.create_table(
            "intent_corrections",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("message_id", sa.Integer, nullable=False, unique=True),
            sa.Column("conversation_id", sa.String(32), nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("label", sa.String(128), nullable=True),
            sa.Column("out_of_scope", sa.Boolean, nullable=False),
            sa.Column("predicted_intent", sa.String(128), nullable=True),
            sa.Column("predicted_confidence", sa.Double, nullable=True),
            sa.Column("reason", sa.String(32), nullable=True),
            sa.Column("agent", sa.String(128), nullable=True),
            sa.Column("created_at", sa.Double, nullable=False),
            sa.Column("updated_at", sa.Double, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
            sa.Column("version", sa.BigInteger, nullable=False),
        )
        op.create_index(
            "ix_intent_corrections_version", "intent_corrections", ["version"], unique=False
        )
    if "corrections_state" not in tables:
        state = op.create_table(
            "corrections_state",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("version", sa.BigInteger, nullable=False),
        )
        op.bulk_insert(state, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_index("ix_intent_corrections_version", table_name="intent_corrections")
    op.drop_table("intent_corrections")
    op.drop_table("corrections_state")
