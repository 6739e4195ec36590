"""SQLite persistence: catalogue items with their cached embeddings, events, served rankings."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.datasets import Item

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    categories TEXT NOT NULL,
    features TEXT NOT NULL,
    created_at REAL,
    encoder TEXT,
    embedding BLOB,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    timestamp REAL NOT NULL,
    bucket TEXT,
    request_id TEXT,
    position INTEGER,
    value REAL
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, timestamp);
CREATE TABLE IF NOT EXISTS rankings (
    request_id TEXT PRIMARY KEY,
    user_id TEXT,
    bucket TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    timestamp REAL NOT NULL,
    item_ids TEXT NOT NULL
);
"""


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


class Database:
    """One SQLite file (WAL mode) shared by the stores; safe to use from several threads and
    from several processes on the same file.

    Threads of one process share one connection behind a lock. Processes are serialised by
    SQLite itself: every write opens its transaction with ``BEGIN IMMEDIATE`` (the write
    lock is taken up front, so a writer waits up to ``busy_timeout_s`` for another process
    instead of failing with "database is locked" when upgrading a read).
    """

    def __init__(self, path: Path, busy_timeout_s: float = 60.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE.
        self._conn = sqlite3.connect(
            path, check_same_thread=False, timeout=busy_timeout_s, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._conn.executescript(_SCHEMA)  # IF NOT EXISTS: safe when two processes race

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        """Run one read statement and return all rows."""
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def write(self, sql: str, params: Iterable[object] = ()) -> int:
        """Run one write statement in its own transaction; returns the rows it changed."""
        with self._lock, self._write() as conn:
            return conn.execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Iterable[object]]) -> None:
        """Run one statement for many parameter rows in a single transaction."""
        with self._lock, self._write() as conn:
            conn.executemany(sql, [tuple(r) for r in rows])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class CatalogueStore:
    """Items and their embeddings (float32 blobs tagged with the encoder that made them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, items: list[Item], vectors: np.ndarray, encoder: str) -> None:
        """Insert or replace ``items`` with their ``[n, d]`` vectors."""
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    it.id,
                    it.title,
                    it.text,
                    json.dumps(it.categories),
                    json.dumps(it.features),
                    it.created_at,
                    encoder,
                    np.asarray(vec, dtype=np.float32).tobytes(),
                    now,
                )
                for it, vec in zip(items, vectors, strict=True)
            ],
        )

    def delete(self, item_ids: list[str]) -> int:
        """Delete items; returns how many existed."""
        existing = self.db.execute(
            f"SELECT id FROM items WHERE id IN ({','.join('?' * len(item_ids))})", item_ids
        )
        self.db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in item_ids])
        return len(existing)

    def load_all(self) -> tuple[list[Item], list[str | None], list[np.ndarray | None]]:
        """Every item (insertion order), the encoder tag and vector of each."""
        rows = self.db.execute(
            "SELECT id, title, text, categories, features, created_at, encoder, embedding "
            "FROM items ORDER BY rowid"
        )
        items, encoders, vectors = [], [], []
        for r in rows:
            items.append(Item(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5]))
            encoders.append(r[6])
            vectors.append(np.frombuffer(r[7], dtype=np.float32) if r[7] is not None else None)
        return items, encoders, vectors

    def existing(self, item_ids: list[str]) -> set[str]:
        """The ids among ``item_ids`` that are stored (possibly by another process)."""
        found: set[str] = set()
        unique = sorted(set(item_ids))
        for start in range(0, len(unique), 500):  # SQLite caps bound parameters
            chunk = unique[start : start + 500]
            rows = self.db.execute(
                f"SELECT id FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    def count(self) -> int:
        """Number of items."""
        return int(self.db.execute("SELECT COUNT(*) FROM items")[0][0])


class EventStore:
    """Interaction events and the rankings served (for A/B analysis and retraining)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, events: list[StoredEvent]) -> int:
        """Store events in one transaction; returns how many were stored."""
        self.db.executemany(
            "INSERT INTO events (user_id, item_id, type, timestamp, bucket, request_id, position,"
            " value) VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    e.user_id,
                    e.item_id,
                    e.type,
                    e.timestamp,
                    e.bucket,
                    e.request_id,
                    e.position,
                    e.value,
                )
                for e in events
            ],
        )
        return len(events)

    def for_user(self, user_id: str, limit: int = 100) -> list[StoredEvent]:
        """The newest ``limit`` events of a user, oldest first."""
        rows = self.db.execute(
            "SELECT user_id, item_id, type, timestamp, bucket, request_id, position, value "
            "FROM events WHERE user_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?",
            (user_id, limit),
        )
        return [StoredEvent(*r) for r in reversed(rows)]

    def all_events(self, types: tuple[str, ...] = ("click", "purchase")) -> list[StoredEvent]:
        """All events of the given types, by user and time (training input)."""
        rows = self.db.execute(
            "SELECT user_id, item_id, type, timestamp, bucket, request_id, position, value FROM"
            f" events WHERE type IN ({','.join('?' * len(types))}) ORDER BY user_id, timestamp",
            types,
        )
        return [StoredEvent(*r) for r in rows]

    def positives_after(
        self, last_id: int, types: tuple[str, ...] = ("click", "purchase"), limit: int = 50_000
    ) -> list[tuple[int, str, float]]:
        """``(id, item_id, timestamp)`` of positive events stored after row ``last_id``, in id
        order (how each process folds every process's events into its popularity)."""
        return self.db.execute(
            f"SELECT id, item_id, timestamp FROM events WHERE id > ? AND type IN"
            f" ({','.join('?' * len(types))}) ORDER BY id LIMIT ?",
            (last_id, *types, limit),
        )

    def last_id(self) -> int:
        """Row id of the newest stored event (0 when there is none)."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])

    def delete_before(self, timestamp: float) -> int:
        """Delete events stamped before ``timestamp``; returns how many went."""
        return self.db.write("DELETE FROM events WHERE timestamp < ?", (timestamp,))

    def delete_rankings_before(self, timestamp: float) -> int:
        """Delete served-ranking logs written before ``timestamp``; returns how many went."""
        return self.db.write("DELETE FROM rankings WHERE timestamp < ?", (timestamp,))

    def count(self) -> int:
        """Number of stored events."""
        return int(self.db.execute("SELECT COUNT(*) FROM events")[0][0])

    def ranking(self, request_id: str) -> dict[str, object] | None:
        """A logged ranking by request id."""
        rows = self.db.execute(
            "SELECT request_id, user_id, bucket, endpoint, timestamp, item_ids FROM rankings"
            " WHERE request_id = ?",
            (request_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {
            "request_id": r[0],
            "user_id": r[1],
            "bucket": r[2],
            "endpoint": r[3],
            "timestamp": r[4],
            "item_ids": json.loads(r[5]),
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
                batch.append((rid, uid, bucket, endpoint, ts, json.dumps(ids)))
            if batch:
                self.db.executemany("INSERT OR REPLACE INTO rankings VALUES (?,?,?,?,?,?)", batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
