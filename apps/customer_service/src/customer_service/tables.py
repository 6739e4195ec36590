"""The support bot's tables (SQLAlchemy Core, one ``metadata``) and where its migrations live.

Epoch-second columns are double precision so PostgreSQL keeps sub-second times; JSON
values are stored as text. The schema is created and upgraded by the Alembic migrations
in ``migrations/`` (version table :data:`VERSION_TABLE`), never by ``create_all``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_customer_service"

metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("low_confidence_streak", sa.Integer, nullable=False, default=0),
    sa.Column("pending_options", sa.Text, nullable=True),
    sa.Column("last_intent", sa.String(128), nullable=True),
    sa.Column("handoff_reason", sa.String(64), nullable=True),
    sa.Column("handoff_at", sa.Double, nullable=True),
    sa.Column("handoff_count", sa.Integer, nullable=False, default=0),
    sa.Column("agent_name", sa.String(128), nullable=True),
    # Incremented by every update; the compare-and-set token (see storage.py).
    sa.Column("version", sa.Integer, nullable=False, default=0, server_default="0"),
    # JSON: the turns that led to the last hand-off (migration 0002).
    sa.Column("handoff_evidence", sa.Text, nullable=True),
    sa.Index("ix_conversations_updated_at", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("intent", sa.String(128), nullable=True),
    sa.Column("confidence", sa.Double, nullable=True),
    sa.Column("citations", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False, index=True),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), index=True),
    sa.Column("rating", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

# The knowledge base's documents, shared by every replica: each change takes the next
# knowledge-base version (kb_state.version) and deletions are kept as tombstones, so a
# replica asks for "everything after version N" and re-ingests just that.
kb_documents = sa.Table(
    "kb_documents",
    metadata,
    sa.Column("doc_id", sa.String(128), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
)

# One row (id 1): the knowledge base's version and the fingerprint of the content files
# last seeded, so the bundled content is written once however many replicas start.
kb_state = sa.Table(
    "kb_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("content_fingerprint", sa.String(64), nullable=True),
)

# Agents' intent corrections of customer messages: the labelled training data of the
# feedback loop (migration 0003). One row per corrected message (a later correction
# replaces it); ``label`` is an intent, or NULL with ``out_of_scope`` set. Every change
# takes the next dataset version (``corrections_state.version``) and deletions stay as
# tombstones, like the knowledge base. ``message_id`` is no foreign key: a correction is
# training data (masked text only) and outlives the conversation's retention.
intent_corrections = sa.Table(
    "intent_corrections",
    metadata,
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
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
)

# One row (id 1): the corrections dataset's version (0 before the first correction).
corrections_state = sa.Table(
    "corrections_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
