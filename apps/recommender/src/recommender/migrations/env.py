"""Alembic environment of the recommender (``keel_service.db.migrate`` runs it)."""

from alembic import context

from keel_service.db import run_migrations_online
from recommender.storage import metadata

run_migrations_online(context, metadata)
