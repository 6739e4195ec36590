"""Hand-off evidence: why the bot handed a conversation over, with the turns that led there.

``conversations.handoff_evidence`` (JSON text, NULL before the first hand-off): the
reason code and the last few customer turns (text, intent, confidence, the bot's
answer kind), written in the same transaction as the hand-off itself.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("conversations")}
    if "handoff_evidence" not in columns:
        op.add_column("conversations", sa.Column("handoff_evidence", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:  # SQLite rebuilds the table
        batch.drop_column("handoff_evidence")
