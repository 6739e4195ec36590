"""The database layer the apps share: engines for SQLite and PostgreSQL, and Alembic.

Each app keeps its tables (SQLAlchemy Core) and its own Alembic migrations folder with
its own version table, so the three apps can share one PostgreSQL database. SQLite is
the embedded default (WAL mode, a busy timeout, foreign keys on); PostgreSQL is the
server option for several replicas.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("keel_service.db")

SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseURLError(ValueError):
    """A database URL this layer cannot use; the message says which forms it accepts."""


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use the psycopg (3) driver; others unchanged.

    Raises:
        DatabaseURLError: not a SQLite or PostgreSQL URL.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise DatabaseURLError(
        f"database URL {redact_url(url)!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def redact_url(url: str) -> str:
    """The URL without its password (safe for logs and errors)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with a busy timeout, or PostgreSQL
    (psycopg) with a pre-pinged pool. A SQLite file's folder is created."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        parsed = sa.engine.make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=10)


class DriverStatement:
    """A Core statement compiled once for an engine's dialect and run straight on the
    driver's cursor (sqlite3 or psycopg) of a SQLAlchemy connection, inside its
    transaction.

    For the few statements of a hot path: ``Connection.execute`` spends most of its time
    in SQLAlchemy itself (the compiled-cache lookup, the execution context, the result
    wrapper). A support-bot turn's four statements cost about 420 microseconds of CPU
    through it and about 250 on the driver (2026-11-30, 2-core machine). Only for
    statements whose columns need no type processing (strings and numbers): values go
    to the driver as they are, and rows come back as the driver's tuples, wrapped as
    named tuples with the statement's column names.
    """

    def __init__(self, engine: Engine, statement: sa.sql.expression.ClauseElement) -> None:
        self._dialect = engine.dialect
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        compiled: Any = statement.compile(dialect=engine.dialect)  # an SQLCompiler
        self.sql = str(compiled)
        #: bind names in order for a positional paramstyle (SQLite's ``?``); None for a
        #: named one (psycopg's ``%(name)s``), which takes the values as a mapping.
        self.positions: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup else None
        )
        names = [c.key for c in getattr(statement, "selected_columns", ())]
        returning = getattr(compiled, "effective_returning", None) or ()
        names += [c.key for c in returning]
        self.row_type = namedtuple("Row", names) if names else None

    def execute(self, conn: Connection, values: dict[str, Any]) -> Any:
        """Run with ``values`` (by bind name) on ``conn``'s driver connection; returns
        the driver's cursor.

        Raises:
            sqlalchemy.exc.DBAPIError: the driver's error as SQLAlchemy would raise it
                (``OperationalError``, ``IntegrityError``, ...; parameters hidden), so
                callers and error handlers see one kind of exception on either path.
        """
        params: Any = values if self.positions is None else [values[k] for k in self.positions]
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, params)
        except self._driver_error as exc:
            cursor.close()
            raise sa.exc.DBAPIError.instance(
                self.sql,
                params,
                exc,
                self._driver_error,
                hide_parameters=True,
                dialect=self._dialect,
            ) from exc
        return cursor

    def first(self, conn: Connection, values: dict[str, Any]) -> Any:
        """The first row (a named tuple), or None."""
        assert self.row_type is not None, "the statement returns no rows"
        cursor = self.execute(conn, values)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else self.row_type(*row)

    def rowcount(self, conn: Connection, values: dict[str, Any]) -> int:
        """How many rows the statement changed."""
        cursor = self.execute(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


class WriteGate:
    """Serialises writers to SQLite (it allows one writer at a time, and queueing on a
    lock beats sleeping in SQLite's busy handler, which backs off up to 100 ms per try);
    a no-op on servers that take concurrent writers.

    Within a process writers queue on a lock; for a SQLite file they then take an
    exclusive ``flock`` on ``<file>.write-lock``, so the writers of several processes
    (uvicorn workers on one database) queue in the kernel too. A transaction that reads
    before it writes is then never overtaken by another process's commit, which SQLite
    refuses at once ("database is locked") instead of waiting.
    """

    def __init__(self, engine: Engine) -> None:
        self._lock: threading.Lock | None = threading.Lock() if is_sqlite(engine) else None
        database = engine.url.database if is_sqlite(engine) else None
        self._lock_path = f"{database}.write-lock" if database and database != ":memory:" else None
        self._lock_file: Any = None  # opened on first use, in the process that writes
        self._lock_pid = 0  # a forked child opens its own (a shared one locks nothing)

    def __call__(self) -> AbstractContextManager[Any]:
        if self._lock is None:
            return nullcontext()
        if self._lock_path is None:
            return self._lock
        return self._file_locked()

    @contextmanager
    def _file_locked(self) -> Iterator[None]:
        import fcntl

        assert self._lock is not None and self._lock_path is not None
        with self._lock:
            if self._lock_file is None or self._lock_pid != os.getpid():
                self._lock_file = open(self._lock_path, "a")  # noqa: SIM115 - kept open
                self._lock_pid = os.getpid()
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)


T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "value")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.value: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Writes that arrive together share one transaction (group commit).

    On SQLite every write transaction takes the :class:`WriteGate`. Under 32 clients on
    a 2-core machine a turn of the support bot held it for about 2.2 ms of wall time
    (0.36 ms when alone) and its writers queued 30 ms for it, while the CPUs were a
    quarter idle: the gate, not the CPU, limited requests/s. Here a writer queues its
    item; the first writer that finds no batch being written takes every queued item
    (at most ``max_batch``) and writes them all in one transaction under the gate, while
    the others wait for their results. An item alone is written as before, in a
    transaction of its own.

    Args:
        engine: the database.
        gate: its write gate.
        apply: writes one item on the batch's connection and returns its result. It must
            not change anything outside the database (it may run again, after a
            rollback) and it may raise ``item_errors`` only before its first write.
        item_errors: exceptions that are one item's answer (e.g. a compare-and-set that
            found the row changed): raised to that item's caller, while the batch's
            other items are still written.
        max_batch: the most items in one transaction.

    Any other exception rolls the batch back; each of its items is then written again
    in a transaction of its own, so an item's failure reaches only its own caller.
    """

    def __init__(
        self,
        engine: Engine,
        gate: WriteGate,
        apply: Callable[[Connection, T], R],
        *,
        item_errors: tuple[type[BaseException], ...] = (),
        max_batch: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: need at least 1")
        self._engine, self._gate, self._apply = engine, gate, apply
        self._item_errors = item_errors
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Slot[T, R]] = []
        self._writing = False
        #: transactions and items written so far (for tests and metrics)
        self.transactions = 0
        self.items = 0

    @property
    def queued(self) -> int:
        """Items waiting for the batch being written to end."""
        return len(self._pending)

    @property
    def writing(self) -> bool:
        """Whether a batch is being written."""
        return self._writing

    def submit(self, item: T) -> R:
        """Write ``item`` (with whatever else is queued); its ``apply`` result.

        Raises:
            Whatever ``apply`` raised for this item, or what its transaction raised.
        """
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._pending.append(slot)
        while True:
            with self._cond:
                while self._writing and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                self._writing = True
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            completed = False
            try:
                self._write(batch)
                completed = True
            finally:
                with self._cond:
                    for written in batch:
                        if not completed:  # interrupted (KeyboardInterrupt, ...)
                            written.error = RuntimeError("the write was interrupted")
                        written.done = True
                    self._writing = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return cast(R, slot.value)

    def _write(self, batch: list[_Slot[T, R]]) -> None:
        try:
            self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            log.warning(
                "a group commit of %d writes failed (%s); writing each on its own",
                len(batch),
                type(exc).__name__,
            )
            for slot in batch:
                try:
                    self._transaction([slot])
                except Exception as own:
                    slot.error = own

    def _transaction(self, batch: list[_Slot[T, R]]) -> None:
        for slot in batch:
            slot.value, slot.error = None, None
        with self._gate(), self._engine.begin() as conn:
            for slot in batch:
                try:
                    slot.value = self._apply(conn, slot.item)
                except self._item_errors as exc:
                    slot.error = exc
        self.transactions += 1
        self.items += len(batch)


def migrate(engine: Engine, migrations_dir: Path, version_table: str) -> None:
    """Bring the schema to the newest revision with Alembic (``upgrade head``).

    Several processes may start at once: on PostgreSQL an advisory lock (keyed by the
    version table) lets one migrate while the others wait; for a SQLite file, an
    exclusive lock on a file beside it does the same. Within a process a lock serialises
    callers too (Alembic's ``context`` is process-global).
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table
    with _PROCESS_MIGRATION_LOCK, _sqlite_file_lock(engine), engine.begin() as conn:
        if not is_sqlite(engine):
            digest = hashlib.sha256(version_table.encode()).digest()[:8]
            key = int.from_bytes(digest, "big", signed=True)
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


_PROCESS_MIGRATION_LOCK = threading.Lock()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if is_sqlite(engine) else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_migrations_online(context: Any, target_metadata: sa.MetaData | None = None) -> None:
    """Body of an app's ``migrations/env.py``: run on the connection :func:`migrate` passed.

    Args:
        context: ``alembic.context``.
        target_metadata: the app's metadata (for ``alembic revision --autogenerate``).
    """
    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    version_table = config.attributes.get("version_table", "alembic_version")
    if connection is None:  # the alembic command line: connect from sqlalchemy.url
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _configure_and_run(context, conn, target_metadata, version_table)
        return
    _configure_and_run(context, connection, target_metadata, version_table)


def _configure_and_run(
    context: Any, connection: Connection, target_metadata: sa.MetaData | None, version_table: str
) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def schema_revision(engine: Engine, version_table: str) -> str | None:
    """The revision a database is at (None before its first migration)."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(version_table):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT version_num FROM {version_table}")).first()
    return None if row is None else str(row[0])
