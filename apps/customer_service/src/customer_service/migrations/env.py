"""Alembic environment of the support bot (``keel_service.db.migrate`` runs it)."""

from alembic import context

from customer_service.tables import metadata
from keel_service.db import run_migrations_online

run_migrations_online(context, metadata)
