"""keel_service.db.WriteGate: SQLite writers of several processes queue on one lock."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import sqlalchemy as sa

from keel_service.db import WriteGate, make_engine, sqlite_url


def _hold_gate(url: str, entered: multiprocessing.synchronize.Event, hold_s: float) -> None:
    gate = WriteGate(make_engine(url))
    with gate():
        entered.set()
        time.sleep(hold_s)


def test_a_sqlite_file_gate_excludes_writers_of_other_processes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    context = multiprocessing.get_context("spawn")
    entered = context.Event()
    holder = context.Process(target=_hold_gate, args=(url, entered, 1.0))
    holder.start()
    try:
        assert entered.wait(60), "the other process never took the gate"
        gate = WriteGate(make_engine(url))
        started = time.monotonic()
        with gate():
            waited = time.monotonic() - started
        # The other process held the gate for 1 s after it signalled: this writer queued.
        assert waited > 0.3
    finally:
        holder.join(30)
    assert holder.exitcode == 0


def test_every_transaction_of_two_processes_is_kept(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (1, 0)")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_increment, args=(url, 50)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT n FROM counter")).scalar_one() == 100


def _increment(url: str, times: int) -> None:
    """Read-then-write transactions (the pattern SQLite refuses at once when another
    process commits in between, unless the writers queue on the gate)."""
    engine = make_engine(url)
    gate = WriteGate(engine)
    for _ in range(times):
        with gate(), engine.begin() as conn:
            n = conn.execute(sa.text("SELECT n FROM counter WHERE id = 1")).scalar_one()
            conn.execute(sa.text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})


def test_an_in_memory_or_server_database_needs_no_lock_file(tmp_path: Path) -> None:
    gate = WriteGate(make_engine("sqlite://"))
    with gate():
        pass
    assert not list(tmp_path.iterdir())
