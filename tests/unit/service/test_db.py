"""keel_service.db on both back ends: engines, Alembic migrations, concurrent starts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel_service.db import (
    DatabaseURLError,
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
