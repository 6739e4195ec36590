"""One version counter per dataset (knowledge base, corrections), bumped in the same
transaction as the change it numbers.

A table with one row (``id`` 1, ``version``) holds the counter. The first statement of
:func:`versioned_write` bumps it: on PostgreSQL that row lock queues concurrent writers
(so versions commit in order); on SQLite it takes the write lock up front. Replicas poll
:func:`current_version` to learn that something changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from keel_service.db import WriteGate


class NothingChanged(Exception):
    """Raised inside :func:`versioned_write` to roll it back (and give the version back)
    when the write turned out to change nothing."""


@contextmanager
def versioned_write(
    engine: Engine, gate: WriteGate, state: sa.Table
) -> Iterator[tuple[Connection, int]]:
    """A transaction holding the next version of the dataset counted in ``state``."""
    try:
        with gate(), engine.begin() as conn:
            conn.execute(state.update().where(state.c.id == 1).values(version=state.c.version + 1))
            version = conn.execute(sa.select(state.c.version).where(state.c.id == 1)).scalar_one()
            yield conn, int(version)
    except NothingChanged:
        return


def current_version(engine: Engine, state: sa.Table) -> int:
    """The newest committed version (0 before anything was written)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(state.c.version).where(state.c.id == 1)).scalar_one())
