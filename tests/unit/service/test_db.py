"""keel_service.db on both back ends: engines, Alembic migrations, concurrent starts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel_service.db import (
    DatabaseURLError,
    DriverStatement,
    make_engine,
    migrate,
    normalise_url,
    redact_url,
    schema_revision,
)

MIGRATION = '''"""create widgets"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "widgets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("widgets")
'''

ENV = """from alembic import context
from keel_service.db import run_migrations_online

run_migrations_online(context)
"""


def _migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "0001_widgets.py").write_text(MIGRATION)
    return folder


def test_urls_are_normalised_and_redacted() -> None:
    assert normalise_url("postgresql://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(DatabaseURLError, match="sqlite:///PATH"):
        normalise_url("mysql://root:hunter2@h/d")
    assert "hunter2" not in redact_url("postgresql://u:hunter2@h/d")


def test_migrations_run_once_and_concurrent_starts_agree(database_url: str, tmp_path: Path) -> None:
    folder = _migrations(tmp_path)
    engine = make_engine(database_url)
    assert schema_revision(engine, "alembic_version_test") is None
    errors: list[BaseException] = []

    def start() -> None:  # several replicas starting at once
        try:
            migrate(make_engine(database_url), folder, "alembic_version_test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert schema_revision(engine, "alembic_version_test") == "0001"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO widgets (name) VALUES ('a')"))
        assert conn.execute(sa.text("SELECT count(*) FROM widgets")).scalar_one() == 1
    migrate(engine, folder, "alembic_version_test")  # idempotent
    engine.dispose()


def test_driver_statements_match_sqlalchemy_on_each_back_end(database_url: str) -> None:
    """A DriverStatement inserts (RETURNING), selects and updates as Connection.execute
    does, inside the connection's transaction, with SQLite's positional and psycopg's
    named parameters."""
    engine = make_engine(database_url)
    meta = sa.MetaData()
    items = sa.Table(
        "driver_items",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("score", sa.Double, nullable=True),
    )
    meta.create_all(engine)
    insert = DriverStatement(
        engine,
        items.insert()
        .values(name=sa.bindparam("p_name"), score=sa.bindparam("p_score"))
        .returning(items.c.id),
    )
    select = DriverStatement(engine, items.select().where(items.c.id == sa.bindparam("key")))
    update = DriverStatement(
        engine,
        items.update()
        .where(items.c.id == sa.bindparam("key"))
        .values(score=sa.bindparam("p_score")),
    )
    with engine.begin() as conn:
        first = insert.first(conn, {"p_score": 0.5, "p_name": "a"}).id
        second = insert.first(conn, {"p_name": "b", "p_score": None}).id
        assert second > first
        assert update.rowcount(conn, {"key": second, "p_score": 2.0}) == 1
        assert update.rowcount(conn, {"key": second + 100, "p_score": 2.0}) == 0
        row = select.first(conn, {"key": first})
        assert (row.id, row.name, row.score) == (first, "a", 0.5)
        assert select.first(conn, {"key": second + 100}) is None
    with engine.connect() as conn:  # committed with the transaction, as SQLAlchemy sees it
        rows = conn.execute(sa.select(items).order_by(items.c.id)).all()
    assert [tuple(r) for r in rows] == [(first, "a", 0.5), (second, "b", 2.0)]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert.first(conn, {"p_name": None, "p_score": 1.0})  # NOT NULL: SQLAlchemy's error
    with engine.connect() as conn:  # and the failed transaction was rolled back
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 2
    engine.dispose()
