"""Alembic environment of the finance monitor (``keel_service.db.migrate`` runs it)."""

from alembic import context

from finance_monitor.storage import metadata
from keel_service.db import run_migrations_online

run_migrations_online(context, metadata)
