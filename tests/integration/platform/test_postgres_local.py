"""``scripts/postgres-local`` after a crash: a server left running is replaced, not fatal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import POSTGRES_LOCAL

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(POSTGRES_LOCAL), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _select_one(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text("SELECT 1")).scalar_one())
    finally:
        engine.dispose()


def test_start_replaces_a_server_whose_state_file_is_gone(tmp_path: Path) -> None:
    state_dir = tmp_path / "pg"
    first = _run("start", "--dir", str(state_dir))
    assert first.returncode == 0, first.stderr
    try:
        # A killed run whose state folder was wiped: the server still runs on its data.
        (state_dir / "postgres.json").unlink()
        second = _run("start", "--dir", str(state_dir))
        assert second.returncode == 0, second.stderr
        assert "left running" in second.stderr
        url = second.stdout.strip().splitlines()[-1]
        assert _select_one(url) == 1
    finally:
        destroyed = _run("destroy", "--dir", str(state_dir))
        assert destroyed.returncode == 0, destroyed.stderr


def test_destroy_stops_a_server_whose_state_file_is_gone(tmp_path: Path) -> None:
    state_dir = tmp_path / "pg"
    started = _run("start", "--dir", str(state_dir))
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    (state_dir / "postgres.json").unlink()
    destroyed = _run("destroy", "--dir", str(state_dir))
    assert destroyed.returncode == 0, destroyed.stderr
    assert "left running" in destroyed.stderr
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _select_one(url)
