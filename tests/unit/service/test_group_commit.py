"""keel_service.db.GroupCommit: concurrent writes share a transaction, and each write's
outcome (its result, its own error, a failure of the batch) reaches only its caller."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from keel_service.db import GroupCommit, WriteGate, make_engine, sqlite_url
from tests.support.group_commit import DEADLINE_S, write_in_one_batch


class Refused(Exception):
    """An item's own answer (raised before the item writes anything)."""


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(sqlite_url(tmp_path / "db.sqlite3"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return engine


def _insert(conn: Connection, value: Any) -> int:
    if value == "refuse":
        raise Refused(value)
    cursor = conn.exec_driver_sql("INSERT INTO t (v) VALUES (?) RETURNING id", (value,))
    return int(cursor.scalar_one())


def _rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(sa.text("SELECT v FROM t")))


def _committer(engine: Engine, **kwargs: Any) -> tuple[GroupCommit[Any, int], WriteGate]:
    gate = WriteGate(engine)
    return GroupCommit(engine, gate, _insert, **kwargs), gate


def _submit_all(committer: GroupCommit[Any, int], gate: WriteGate, values: list[Any]) -> Any:
    """Submit ``values`` as one batch behind a first writer (``write_in_one_batch``);
    each value's result or exception."""
    outcomes: dict[Any, Any] = {}

    def submit(value: Any) -> None:
        try:
            outcomes[value] = committer.submit(value)
        except Exception as exc:
            outcomes[value] = exc

    write_in_one_batch(committer, gate, [functools.partial(submit, v) for v in values])
    return outcomes


def test_writes_that_queue_together_share_one_transaction(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    committer, gate = _committer(engine)
    values = [f"v{i}" for i in range(6)]
    outcomes = _submit_all(committer, gate, values)
    assert _rows(engine) == sorted(values)
    # The first alone, then the five that queued behind it in one transaction.
    assert committer.items == 6
    assert committer.transactions == 2
    # Each caller got its own row's id.
    with engine.connect() as conn:
        ids = {v: i for v, i in conn.execute(sa.text("SELECT v, id FROM t"))}
    assert outcomes == ids


def test_an_item_error_reaches_its_caller_and_the_batch_is_still_written(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    committer, gate = _committer(engine, item_errors=(Refused,))
    outcomes = _submit_all(committer, gate, ["a", "b", "refuse", "c"])
    assert isinstance(outcomes["refuse"], Refused)
    assert all(isinstance(outcomes[v], int) for v in "abc")
    assert _rows(engine) == ["a", "b", "c"]
    assert committer.transactions == 2  # no write was repeated on its own


def test_a_failing_write_fails_alone_and_the_others_are_written_each_on_its_own(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    committer, gate = _committer(engine)  # Refused is no item error here: it fails the batch
    outcomes = _submit_all(committer, gate, ["a", "b", "refuse", "c"])
    assert isinstance(outcomes["refuse"], Refused)
    assert all(isinstance(outcomes[v], int) for v in "abc")
    # Nothing of the rolled-back batch is left twice: each row once.
    assert _rows(engine) == ["a", "b", "c"]


def test_a_database_error_of_one_item_fails_only_that_item(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    committer, gate = _committer(engine)
    outcomes = _submit_all(committer, gate, ["a", None, "b"])  # NULL: NOT NULL fails
    assert isinstance(outcomes[None], sa.exc.IntegrityError)
    assert _rows(engine) == ["a", "b"]


def test_batches_are_capped_at_max_batch(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    committer, gate = _committer(engine, max_batch=2)
    values = [f"v{i}" for i in range(5)]
    _submit_all(committer, gate, values)
    assert _rows(engine) == sorted(values)
    assert committer.transactions == 3  # 1, then the four queued in twos


def test_max_batch_must_be_positive(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with pytest.raises(ValueError, match="max_batch=0"):
        GroupCommit(engine, WriteGate(engine), _insert, max_batch=0)


def test_many_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    committer, _gate = _committer(engine)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        for i in range(40):
            try:
                committer.submit(f"{k}-{i}")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
        assert not thread.is_alive()
    assert errors == []
    assert len(_rows(engine)) == 320
    assert committer.items == 320
    assert committer.transactions <= 320
