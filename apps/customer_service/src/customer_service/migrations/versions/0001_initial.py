"""The support bot's schema: conversations, messages, feedback and the shared knowledge base.

Adopts a SQLite file made before Alembic (``metadata.create_all``, possibly from before
the ``version`` column): only the missing tables, columns and indexes are created.

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

    if "conversations" not in tables:
        op.create_table(
            "conversations",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("client_id", sa.String(128), nullable=False),
            sa.Column("state", sa.String(32), nullable=False),
            sa.Column("created_at", sa.Double, nullable=False),
            sa.Column("updated_at", sa.Double, nullable=False),
            sa.Column("low_confidence_streak", sa.Integer, nullable=False),
            sa.Column("pending_options", sa.Text, nullable=True),
            sa.Column("last_intent", sa.String(128), nullable=True),
            sa.Column("handoff_reason", sa.String(64), nullable=True),
            sa.Column("handoff_at", sa.Double, nullable=True),
            sa.Column("handoff_count", sa.Integer, nullable=False),
            sa.Column("agent_name", sa.String(128), nullable=True),
            sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        )
    else:  # a file from before compare-and-set lacks the version column
        columns = {c["name"] for c in inspector.get_columns("conversations")}
        if "version" not in columns:
            op.add_column(
                "conversations",
                sa.Column("version", sa.Integer, nullable=False, server_default="0"),
            )
    _index("conversations", "ix_conversations_state", ["state"], inspector, tables)
    _index("conversations", "ix_conversations_updated_at", ["updated_at"], inspector, tables)

    if "messages" not in tables:
        op.create_table(
            "messages",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column(
                "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=True
            ),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("kind", sa.String(32), nullable=True),
            sa.Column("intent", sa.String(128), nullable=True),
            sa.Column("confidence", sa.Double, nullable=True),
            sa.Column("citations", sa.Text, nullable=True),
            sa.Column("created_at", sa.Double, nullable=False),
        )
    _index("messages", "ix_messages_conversation_id", ["conversation_id"], inspector, tables)
    _index("messages", "ix_messages_created_at", ["created_at"], inspector, tables)

    if "feedback" not in tables:
        op.create_table(
            "feedback",
            sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), primary_key=True),
            sa.Column(
                "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=True
            ),
            sa.Column("rating", sa.Integer, nullable=False),
            sa.Column("comment", sa.Text, nullable=True),
            sa.Column("created_at", sa.Double, nullable=False),
        )
    _index("feedback", "ix_feedback_conversation_id", ["conversation_id"], inspector, tables)

    if "kb_documents" not in tables:
        op.create_table(
            "kb_documents",
            sa.Column("doc_id", sa.String(128), primary_key=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("source", sa.Text, nullable=False),
            sa.Column("format", sa.String(16), nullable=False),
            sa.Column("content_hash", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.Double, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
            sa.Column("version", sa.BigInteger, nullable=False),
        )
    _index("kb_documents", "ix_kb_documents_version", ["version"], inspector, tables)

    if "kb_state" not in tables:
        state = op.create_table(
            "kb_state",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("version", sa.BigInteger, nullable=False),
            sa.Column("content_fingerprint", sa.String(64), nullable=True),
        )
        op.bulk_insert(state, [{"id": 1, "version": 0, "content_fingerprint": None}])


def _index(
    table: str, name: str, columns: list[str], inspector: sa.Inspector, tables: set[str]
) -> None:
    existing = {ix["name"] for ix in inspector.get_indexes(table)} if table in tables else set()
    if name not in existing:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name in ("kb_state", "kb_documents", "feedback", "messages", "conversations"):
        op.drop_table(name)
