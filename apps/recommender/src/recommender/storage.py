"""Persistence on SQLite or PostgreSQL (SQLAlchemy Core, Alembic): catalogue items with
their cached embeddings and a catalogue version, events, served rankings.

Several processes may share one database: the worker processes of one server on the
embedded SQLite file, or replicas on several hosts on one PostgreSQL. Every catalogue
change bumps a version number in ``catalogue_state`` and stamps the rows it touched (or a
tombstone for a deletion) with it, so each process can ask "what changed since the version
I applied?" (:meth:`CatalogueStore.changes_since`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from keel_service.db import WriteGate, is_sqlite, make_engine, migrate, sqlite_url
from recommender.datasets import Item

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_recommender"
#: Keeps ``IN (...)`` lists under SQLite's bound-parameter cap.
_CHUNK = 500
#: Advisory-lock key that orders event inserts on PostgreSQL (see :meth:`EventStore.add`).
_EVENTS_LOCK_KEY = 0x7265_635F_6576_7473  # "rec_evts"

metadata = sa.MetaData()

items_table = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("categories", sa.Text, nullable=False),  # JSON list
    sa.Column("features", sa.Text, nullable=False),  # JSON object
    sa.Column("created_at", sa.Double, nullable=True),
    sa.Column("encoder", sa.Text, nullable=True),
    sa.Column("embedding", sa.LargeBinary, nullable=True),  # float32 bytes
    sa.Column("updated_at", sa.Double, nullable=False),
    # catalogue order (insertion order; an update keeps the place)
    sa.Column("position", sa.BigInteger, nullable=True),
    # the catalogue version of the last change to this row
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
)
sa.Index("items_version", items_table.c.version)

deleted_items_table = sa.Table(
    "deleted_items",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)
sa.Index("deleted_items_version", deleted_items_table.c.version)

catalogue_state_table = sa.Table(
    "catalogue_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("seeded", sa.Boolean, nullable=False),
)

events_table = sa.Table(
    "events",
    metadata,
    # AUTOINCREMENT on SQLite: ids are never reused after retention empties the table,
    # so a process's "applied up to id N" stays true (PostgreSQL sequences never reuse).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("bucket", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("position", sa.Integer),
    sa.Column("value", sa.Double),
    sqlite_autoincrement=True,
)
sa.Index("events_user", events_table.c.user_id, events_table.c.timestamp)

rankings_table = sa.Table(
    "rankings",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("item_ids", sa.Text, nullable=False),  # JSON list
)
sa.Index("rankings_timestamp", rankings_table.c.timestamp)

_EVENT_COLUMNS = (
    events_table.c.user_id,
    events_table.c.item_id,
    events_table.c.type,
    events_table.c.timestamp,
    events_table.c.bucket,
    events_table.c.request_id,
    events_table.c.position,
    events_table.c.value,
)


@dataclass(frozen=True)
class StoredEvent:
    """An impression / click / purchase / rating logged by the product backend."""

    user_id: str
    item_id: str
    type: str
    timestamp: float
    bucket: str | None = None
    request_id: str | None = None
    position: int | None = None
    value: float | None = None


@dataclass(frozen=True)
class StoredItem:
    """A catalogue row: the item, the encoder tag and vector stored with it."""

    item: Item
    encoder: str | None
    vector: np.ndarray | None


@dataclass(frozen=True)
class CatalogueChanges:
    """What changed in the catalogue after one version, up to ``version``.

    Attributes:
        version: the catalogue version these changes bring a reader to.
        upserted: items inserted or updated (newest state), in catalogue order.
        deleted: ids deleted (and not re-added since).
    """

    version: int
    upserted: list[StoredItem]
    deleted: list[str]


def _row_item(r: Any) -> StoredItem:
    item = Item(
        r.id, r.title, r.text, json.loads(r.categories), json.loads(r.features), r.created_at
    )
    vector = np.frombuffer(r.embedding, dtype=np.float32) if r.embedding is not None else None
    return StoredItem(item, r.encoder, vector)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing`` / ``_do_update``)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


class Database:
    """One SQLAlchemy engine shared by the stores, migrated to the newest schema.

    Safe to use from several threads and from several processes (or hosts, on
    PostgreSQL) on one database. Writes go through :meth:`write`: a transaction that, on
    SQLite, first takes the in-process :class:`~keel_service.db.WriteGate` and then the
    database's write lock up front (``BEGIN IMMEDIATE``), so a writer that reads before it
    writes waits for another process instead of failing with "database is locked".

    Args:
        url: SQLAlchemy URL (``sqlite:///PATH`` or ``postgresql://…``); a path means a
            SQLite file.
    """

    def __init__(self, url: str | Path) -> None:
        self.url = sqlite_url(url) if isinstance(url, Path) else url
        self.engine = make_engine(self.url)
        self.sqlite = is_sqlite(self.engine)
        migrate(self.engine, MIGRATIONS_DIR, VERSION_TABLE)
        self._gate = WriteGate(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (one consistent snapshot on SQLite)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._gate(), self.engine.begin() as conn:
            if self.sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class CatalogueStore:
    """Items and their embeddings (float32 blobs tagged with the encoder that made them),
    versioned so other processes can follow the changes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _bump_version(conn: Connection) -> int:
        # The row lock this takes orders concurrent catalogue writers: versions commit in
        # increasing order, so a reader that sees version v sees every change up to v.
        return int(
            conn.execute(
                sa.update(catalogue_state_table)
                .where(catalogue_state_table.c.id == 1)
                .values(version=catalogue_state_table.c.version + 1)
                .returning(catalogue_state_table.c.version)
            ).scalar_one()
        )

    def upsert(self, items: list[Item], vectors: np.ndarray | None, encoder: str | None) -> int:
        """Insert or replace ``items`` with their ``[n, d]`` vectors (None: no vectors yet,
        every process embeds them on load) as one new catalogue version.

        Returns:
            The new catalogue version.
        """
        if vectors is not None and len(vectors) != len(items):
            raise ValueError(f"{len(items)} items but {len(vectors)} vectors")
        with self.db.write() as conn:
            return self._upsert(conn, items, vectors, encoder)

    def _upsert(
        self, conn: Connection, items: list[Item], vectors: np.ndarray | None, encoder: str | None
    ) -> int:
        version = self._bump_version(conn)
        if not items:
            return version
        now = time.time()
        start = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(items_table.c.position), 0))
        ).scalar_one()
        rows = [
            {
                "id": it.id,
                "title": it.title,
                "text": it.text,
                "categories": json.dumps(it.categories),
                "features": json.dumps(it.features),
                "created_at": it.created_at,
                "encoder": encoder if vectors is not None else None,
                "embedding": (
                    np.asarray(vectors[k], dtype=np.float32).tobytes()
                    if vectors is not None
                    else None
                ),
                "updated_at": now,
                "position": int(start) + k + 1,
                "version": version,
            }
            for k, it in enumerate(items)
        ]
        stmt = _insert(conn, items_table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[items_table.c.id],
            # ``position`` is left alone: an updated item keeps its place
            set_={c: stmt.excluded[c] for c in rows[0] if c not in ("id", "position")},
        )
        conn.execute(stmt, rows)
        ids = [it.id for it in items]
        for start_k in range(0, len(ids), _CHUNK):
            conn.execute(
                sa.delete(deleted_items_table).where(
                    deleted_items_table.c.id.in_(ids[start_k : start_k + _CHUNK])
                )
            )
        return version

    def seed(self, items: list[Item]) -> bool:
        """Fill an empty catalogue once per database (the data set's items, without
        vectors). Of several processes starting at once exactly one seeds.

        Returns:
            True when this call seeded the catalogue.
        """
        with self.db.write() as conn:
            won = conn.execute(
                sa.update(catalogue_state_table)
                .where(catalogue_state_table.c.id == 1, catalogue_state_table.c.seeded.is_(False))
                .values(seeded=True)
            ).rowcount
            if won:
                self._upsert(conn, items, None, None)
            return bool(won)

    def mark_seeded(self) -> None:
        """Record that the catalogue holds its initial items (``prepare`` wrote them)."""
        with self.db.write() as conn:
            conn.execute(
                sa.update(catalogue_state_table)
                .where(catalogue_state_table.c.id == 1)
                .values(seeded=True)
            )

    def set_vectors(self, item_ids: list[str], vectors: np.ndarray, encoder: str) -> None:
        """Cache re-computed vectors of unchanged items (no new catalogue version: the
        items' content did not change, and other encoders' processes ignore the tag)."""
        with self.db.write() as conn:
            conn.execute(
                sa.update(items_table)
                .where(items_table.c.id == sa.bindparam("item_id"))
                .values(encoder=encoder, embedding=sa.bindparam("vec")),
                [
                    {"item_id": i, "vec": np.asarray(v, dtype=np.float32).tobytes()}
                    for i, v in zip(item_ids, vectors, strict=True)
                ],
            )

    def delete(self, item_ids: list[str]) -> tuple[int, int]:
        """Delete items (leaving tombstones for other processes).

        Returns:
            ``(how many existed, the new catalogue version)``.
        """
        unique = list(dict.fromkeys(item_ids))
        with self.db.write() as conn:
            version = self._bump_version(conn)
            removed = 0
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                removed += conn.execute(
                    sa.delete(items_table).where(items_table.c.id.in_(chunk))
                ).rowcount
                stmt = _insert(conn, deleted_items_table)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[deleted_items_table.c.id],
                        set_={"version": stmt.excluded.version},
                    ),
                    [{"id": i, "version": version} for i in chunk],
                )
            return removed, version

    def version(self) -> int:
        """The current catalogue version (0 before any change)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(catalogue_state_table.c.version).where(
                        catalogue_state_table.c.id == 1
                    )
                ).scalar_one()
            )

    def load_all(self) -> tuple[int, list[StoredItem]]:
        """The catalogue version and every item (catalogue order) with encoder and vector.

        Items changed after the returned version may already be included: a reader that
        applies the changes since that version again converges on the same catalogue.
        """
        version = self.version()
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(items_table).order_by(
                    items_table.c.position.is_(None), items_table.c.position, items_table.c.id
                )
            ).all()
        return version, [_row_item(r) for r in rows]

    def changes_since(self, version: int) -> CatalogueChanges | None:
        """What changed after catalogue ``version`` (None when nothing did).

        Only changes up to the version read first are returned: writers commit versions
        in order, so everything up to it is visible, and later changes wait for the next
        call.
        """
        current = self.version()
        if current <= version:
            return None
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(items_table)
                .where(items_table.c.version > version, items_table.c.version <= current)
                .order_by(items_table.c.position, items_table.c.id)
            ).all()
            gone = conn.execute(
                sa.select(deleted_items_table.c.id).where(
                    deleted_items_table.c.version > version,
                    deleted_items_table.c.version <= current,
                )
            ).all()
        return CatalogueChanges(current, [_row_item(r) for r in rows], [r[0] for r in gone])

    def existing(self, item_ids: list[str]) -> set[str]:
        """The ids among ``item_ids`` that are stored (possibly by another process)."""
        found: set[str] = set()
        unique = sorted(set(item_ids))
        with self.db.read() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                rows = conn.execute(sa.select(items_table.c.id).where(items_table.c.id.in_(chunk)))
                found.update(r[0] for r in rows)
        return found

    def count(self) -> int:
        """Number of items."""
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(items_table)).scalar())


class EventStore:
    """Interaction events and the rankings served (for A/B analysis and retraining)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, events: list[StoredEvent]) -> int:
        """Store events in one transaction; returns how many were stored.

        Event ids must become visible in increasing order, since every process folds
        "positives after the last id I applied" into its popularity: SQLite has one writer
        at a time anyway; on PostgreSQL a transaction-scoped advisory lock makes inserts
        take their ids and commit one transaction at a time.
        """
        if not events:
            return 0
        with self.db.write() as conn:
            if not self.db.sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENTS_LOCK_KEY})
            conn.execute(
                sa.insert(events_table),
                [
                    {
                        "user_id": e.user_id,
                        "item_id": e.item_id,
                        "type": e.type,
                        "timestamp": e.timestamp,
                        "bucket": e.bucket,
                        "request_id": e.request_id,
                        "position": e.position,
                        "value": e.value,
                    }
                    for e in events
                ],
            )
        return len(events)

    def for_user(self, user_id: str, limit: int = 100) -> list[StoredEvent]:
        """The newest ``limit`` events of a user, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(*_EVENT_COLUMNS)
                .where(events_table.c.user_id == user_id)
                .order_by(events_table.c.timestamp.desc(), events_table.c.id.desc())
                .limit(limit)
            ).all()
        return [StoredEvent(*r) for r in reversed(rows)]

    def all_events(self, types: tuple[str, ...] = ("click", "purchase")) -> list[StoredEvent]:
        """All events of the given types, by user and time (training input)."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(*_EVENT_COLUMNS)
                .where(events_table.c.type.in_(types))
                .order_by(events_table.c.user_id, events_table.c.timestamp, events_table.c.id)
            ).all()
        return [StoredEvent(*r) for r in rows]

    def positives_after(
        self, last_id: int, types: tuple[str, ...] = ("click", "purchase"), limit: int = 50_000
    ) -> Sequence[tuple[int, str, float]]:
        """``(id, item_id, timestamp)`` of positive events stored after row ``last_id``, in id
        order (how each process folds every process's events into its popularity)."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(events_table.c.id, events_table.c.item_id, events_table.c.timestamp)
                .where(events_table.c.id > last_id, events_table.c.type.in_(types))
                .order_by(events_table.c.id)
                .limit(limit)
            ).all()
        return [(int(r[0]), str(r[1]), float(r[2])) for r in rows]

    def last_id(self) -> int:
        """Row id of the newest stored event (0 when there is none)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(events_table.c.id), 0))
                ).scalar_one()
            )

    def delete_before(self, timestamp: float) -> int:
        """Delete events stamped before ``timestamp``; returns how many went."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    sa.delete(events_table).where(events_table.c.timestamp < timestamp)
                ).rowcount
            )

    def delete_rankings_before(self, timestamp: float) -> int:
        """Delete served-ranking logs written before ``timestamp``; returns how many went."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    sa.delete(rankings_table).where(rankings_table.c.timestamp < timestamp)
                ).rowcount
            )

    def count(self) -> int:
        """Number of stored events."""
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar())

    def ranking(self, request_id: str) -> dict[str, object] | None:
        """A logged ranking by request id."""
        with self.db.read() as conn:
            r = conn.execute(
                sa.select(rankings_table).where(rankings_table.c.request_id == request_id)
            ).first()
        if r is None:
            return None
        return {
            "request_id": r.request_id,
            "user_id": r.user_id,
            "bucket": r.bucket,
            "endpoint": r.endpoint,
            "timestamp": r.timestamp,
            "item_ids": json.loads(r.item_ids),
        }


class RankingLog:
    """Writes served rankings (request id, user, bucket, items) off the request path.

    Requests append to a deque (atomic, no lock or thread wake-up on the hot path); a
    background thread commits what accumulated every ``interval_s`` in one transaction.
    ``flush()`` writes what is pending at once.
    """

    def __init__(self, db: Database, interval_s: float = 0.05, max_pending: int = 100_000) -> None:
        self.db = db
        self.interval_s = interval_s
        self._pending: deque[tuple] = deque(maxlen=max_pending)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ranking-log", daemon=True)
        self._thread.start()

    def log(
        self, request_id: str, user_id: str | None, bucket: str, endpoint: str, ids: list[str]
    ) -> None:
        """Queue one served ranking (the oldest are dropped past ``max_pending``)."""
        self._pending.append((request_id, user_id, bucket, endpoint, time.time(), ids))

    def flush(self) -> None:
        """Write every pending ranking now."""
        with self._write_lock:
            batch = []
            while self._pending:
                rid, uid, bucket, endpoint, ts, ids = self._pending.popleft()
                batch.append(
                    {
                        "request_id": rid,
                        "user_id": uid,
                        "bucket": bucket,
                        "endpoint": endpoint,
                        "timestamp": ts,
                        "item_ids": json.dumps(ids),
                    }
                )
            if not batch:
                return
            try:
                with self.db.write() as conn:
                    stmt = _insert(conn, rankings_table)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=[rankings_table.c.request_id],
                            set_={c: stmt.excluded[c] for c in batch[0] if c != "request_id"},
                        ),
                        batch,
                    )
            except Exception:
                # put the batch back (oldest first) for the next flush: a database hiccup
                # must not lose served rankings
                for row in reversed(batch):
                    self._pending.appendleft(
                        (
                            row["request_id"],
                            row["user_id"],
                            row["bucket"],
                            row["endpoint"],
                            row["timestamp"],
                            json.loads(row["item_ids"]),
                        )
                    )
                raise

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # a database hiccup must not end the thread; retried later
                log.exception("ranking log flush failed; retrying in %.2f s", self.interval_s)

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
