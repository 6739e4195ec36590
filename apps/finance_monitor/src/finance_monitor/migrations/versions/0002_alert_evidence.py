"""Alert evidence (the messages behind each alert) and the alert lifecycle (resolution).

- ``alert_evidence``: per alert, its most negative messages (id, text, source,
  sentiment with its probability, time), ranked most negative first.
- ``alerts.resolved_at`` (wall clock; NULL while firing) and ``alerts.resolve_state``
  (NULL while firing; ``pending`` -> ``queued`` once the resolved notification is
  queued; ``skipped`` for silenced alerts, which are never notified).

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
    inspector = sa.inspect(op.get_bind())
    columns = {c["name"] for c in inspector.get_columns("alerts")}
    if "resolved_at" not in columns:
        op.add_column("alerts", sa.Column("resolved_at", sa.Double, nullable=True))
    if "resolve_state" not in columns:
        op.add_column("alerts", sa.Column("resolve_state", sa.Text, nullable=True))
    indexes = {ix["name"] for ix in inspector.get_indexes("alerts")}
    if "alerts_resolve" not in indexes:
        op.create_index("alerts_resolve", "alerts", ["resolve_state"])
    if "alert_evidence" not in set(inspector.get_table_names()):
        op.create_table(
            "alert_evidence",
            sa.Column("alert_key", sa.Text, nullable=False),
            sa.Column("rank", sa.Integer, nullable=False, autoincrement=False),
            sa.Column("message_id", sa.Text, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("source", sa.Text, nullable=False),
            sa.Column("sentiment", sa.Text, nullable=False),
            sa.Column("probability", sa.Double, nullable=False),
            sa.Column("negative", sa.Double, nullable=False),
            sa.Column("event_time", sa.Double, nullable=False),
            sa.PrimaryKeyConstraint("alert_key", "rank"),
        )


def downgrade() -> None:
    op.drop_table("alert_evidence")
    op.drop_index("alerts_resolve", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:  # SQLite rebuilds the table
        batch.drop_column("resolve_state")
        batch.drop_column("resolved_at")
