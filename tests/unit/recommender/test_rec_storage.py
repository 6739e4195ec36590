"""Recommender storage on both back ends (embedded SQLite and a real PostgreSQL):
migrations, the versioned catalogue that replicas follow, events and served rankings.

Only the text encoder is a stand-in (hashed vectors): nothing here depends on what the
vectors mean.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from keel_service.db import schema_revision
from recommender.catalogue import Catalogue
from recommender.datasets import Item
from recommender.storage import (
    VERSION_TABLE,
    CatalogueStore,
    Database,
    EventStore,
    RankingLog,
    StoredEvent,
)
from tests.unit.recommender.test_rec_hardening import HashEncoder, items


class CountingEncoder(HashEncoder):
    """The hash encoder, counting the documents it embedded."""

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, docs: list[str]) -> np.ndarray:
        self.embedded += len(docs)
        return super().embed(docs)


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture()
def db(database_url: str) -> Database:
    handle = Database(database_url)
    yield handle
    handle.close()


def test_migrations_are_at_head_and_idempotent(database_url: str, db: Database) -> None:
    assert schema_revision(db.engine, VERSION_TABLE) == "0001"
    again = Database(database_url)  # a second process starting on the same database
    try:
        assert schema_revision(again.engine, VERSION_TABLE) == "0001"
        tables = set(sa.inspect(again.engine).get_table_names())
        assert {"items", "deleted_items", "catalogue_state", "events", "rankings"} <= tables
        assert CatalogueStore(again).version() == 0
    finally:
        again.close()


def test_catalogue_round_trip_keeps_order_vectors_and_versions(db: Database) -> None:
    store = CatalogueStore(db)
    first = [
        Item("b", "Bee", "About bees", ["nature"], {"price": 1.25}, 1_700_000_000.125),
        Item("a", "Ant", "About ants", [], {}, None),
    ]
    v1 = store.upsert(first, vectors(2), "enc")
    v2 = store.upsert([Item("c", "Cat", "About cats")], vectors(1, seed=1), "enc")
    # an update keeps the item's place in the catalogue
    v3 = store.upsert([Item("b", "Bee 2", "More bees", ["nature"])], vectors(1, seed=2), "enc")
    assert (v1, v2, v3) == (1, 2, 3)
    version, stored = store.load_all()
    assert version == 3
    assert [s.item.id for s in stored] == ["b", "a", "c"]
    assert stored[0].item.title == "Bee 2"
    assert stored[1].item == first[1]
    assert np.array_equal(stored[2].vector, vectors(1, seed=1)[0])
    assert stored[0].encoder == "enc"
    assert store.existing(["a", "zz", "c"]) == {"a", "c"}
    assert store.count() == 3


def test_sub_second_timestamps_survive(db: Database) -> None:
    store = CatalogueStore(db)
    store.upsert([Item("x", "X", "x", [], {}, 1_700_000_000.123456)], vectors(1), "enc")
    assert store.load_all()[1][0].item.created_at == 1_700_000_000.123456
    events = EventStore(db)
    events.add([StoredEvent("u", "x", "click", 1_700_000_000.654321, value=0.5)])
    assert events.for_user("u")[0].timestamp == 1_700_000_000.654321


def test_changes_since_reports_upserts_and_tombstones(db: Database) -> None:
    store = CatalogueStore(db)
    store.upsert(items(["a", "b", "c"]), vectors(3), "enc")
    assert store.changes_since(1) is None
    removed, version = store.delete(["b", "missing"])
    assert (removed, version) == (1, 2)
    store.upsert(items(["d"]), vectors(1), "enc")
    changes = store.changes_since(1)
    assert changes is not None and changes.version == 3
    assert [s.item.id for s in changes.upserted] == ["d"]
    assert changes.deleted == ["b", "missing"]
    # re-adding a deleted item removes its tombstone
    store.upsert(items(["b"]), vectors(1), "enc")
    changes = store.changes_since(1)
    assert changes is not None
    assert sorted(s.item.id for s in changes.upserted) == ["b", "d"]
    assert changes.deleted == ["missing"]


def test_exactly_one_of_several_starting_processes_seeds(database_url: str) -> None:
    handles = [Database(database_url) for _ in range(3)]
    won: list[bool] = []
    errors: list[BaseException] = []

    def seed(handle: Database) -> None:
        try:
            won.append(CatalogueStore(handle).seed(items(["s1", "s2"])))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=seed, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert sorted(won) == [False, False, True]
        store = CatalogueStore(handles[0])
        version, stored = store.load_all()
        assert version == 1 and [s.item.id for s in stored] == ["s1", "s2"]
        assert all(s.vector is None for s in stored)  # embedded by each process's load
        assert store.seed(items(["s3"])) is False
    finally:
        for h in handles:
            h.close()


def test_a_replica_applies_another_replicas_changes(database_url: str, tmp_path: Path) -> None:
    db_a, db_b = Database(database_url), Database(database_url)
    enc_a, enc_b = CountingEncoder(), CountingEncoder()
    a = Catalogue(CatalogueStore(db_a), enc_a, "hash", tmp_path / "a-index")
    b = Catalogue(CatalogueStore(db_b), enc_b, "hash", tmp_path / "b-index")
    try:
        a.load()
        b.load()
        a.upsert(items(["i1", "i2", "i3"]))
        assert a.version == 1 and b.version == 0
        assert "i1" not in b.snapshot.rows
        assert b.sync() == (["i1", "i2", "i3"], [])
        assert b.version == 1
        assert enc_b.embedded == 0  # same encoder: the stored vectors are reused
        assert np.array_equal(b.snapshot.vectors, a.snapshot.vectors)
        hits = b.search(a.snapshot.vectors[1], k=1)
        assert hits[0].id == "i2"
        # an update and a delete through A; B's own change meanwhile is kept
        a.upsert([Item("i1", "New title", "New text", ["cat"])])
        assert a.delete(["i2"]) == 1
        b.upsert(items(["from-b"]))
        upserted, deleted = b.sync()
        assert (upserted, deleted) == (["i1"], ["i2"])
        assert b.version == a.store.version() == 4
        assert b.snapshot.items[b.snapshot.rows["i1"]].title == "New title"
        assert set(b.snapshot.rows) == {"i1", "i3", "from-b"}
        assert b.index is not None and set(b.index.ids) == {"i1", "i3", "from-b"}
        # A catches up with B's item; nothing left to apply after that
        assert a.sync() == (["from-b"], [])
        assert a.sync() == ([], [])
        assert [it.id for it in a.snapshot.items] == [it.id for it in b.snapshot.items]
    finally:
        db_a.close()
        db_b.close()


def test_a_replica_with_another_encoder_embeds_changed_items(
    database_url: str, tmp_path: Path
) -> None:
    db_a, db_b = Database(database_url), Database(database_url)
    enc_b = CountingEncoder()
    a = Catalogue(CatalogueStore(db_a), HashEncoder(), "hash-a", tmp_path / "a-index")
    b = Catalogue(CatalogueStore(db_b), enc_b, "hash-b", tmp_path / "b-index")
    try:
        a.load()
        b.load()
        a.upsert(items(["x1", "x2"]))
        b.sync()
        assert enc_b.embedded == 2
        assert set(b.snapshot.rows) == {"x1", "x2"}
    finally:
        db_a.close()
        db_b.close()


def test_load_embeds_a_seeded_catalogue_once(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    try:
        CatalogueStore(db).seed(items(["s1", "s2", "s3"]))
        first = CountingEncoder()
        assert Catalogue(CatalogueStore(db), first, "hash", tmp_path / "i1").load() == 3
        again = CountingEncoder()  # the next start finds the vectors cached
        assert Catalogue(CatalogueStore(db), again, "hash", tmp_path / "i2").load() == 0
        assert again.embedded == 0
        assert CatalogueStore(db).version() == 1  # caching vectors is no catalogue change
    finally:
        db.close()


def test_events_order_positives_and_retention(db: Database) -> None:
    events = EventStore(db)
    now = time.time()
    events.add(
        [
            StoredEvent("u1", "a", "click", now - 100, bucket="control", position=2),
            StoredEvent("u1", "b", "impression", now - 50),
            StoredEvent("u2", "c", "purchase", now - 10, value=9.5),
            StoredEvent("u1", "d", "click", now),
        ]
    )
    assert events.add([]) == 0
    assert [e.item_id for e in events.for_user("u1")] == ["a", "b", "d"]
    assert [e.item_id for e in events.for_user("u1", limit=2)] == ["b", "d"]
    assert events.for_user("u1")[0] == StoredEvent(
        "u1", "a", "click", now - 100, "control", None, 2
    )
    positives = events.positives_after(0)
    assert [p[1] for p in positives] == ["a", "c", "d"]
    assert [p[1] for p in events.positives_after(positives[0][0])] == ["c", "d"]
    assert [e.item_id for e in events.all_events()] == ["a", "d", "c"]
    last = events.last_id()
    assert events.delete_before(now - 60) == 1
    assert events.count() == 3
    assert events.delete_before(now + 1) == 3
    # ids are never reused once the table is empty: "applied up to id N" stays true
    events.add([StoredEvent("u3", "e", "click", now)])
    assert events.last_id() > last


def test_ranking_log_writes_and_replaces(db: Database) -> None:
    log = RankingLog(db, interval_s=60)
    try:
        log.log("r1", "u1", "control", "rerank", ["a", "b"])
        log.log("r2", None, "diverse", "recommend", [])
        log.flush()
        log.log("r1", "u1", "control", "rerank", ["b"])  # same request id: replaced
        log.flush()
        events = EventStore(db)
        r1 = events.ranking("r1")
        assert r1 is not None and r1["item_ids"] == ["b"] and r1["bucket"] == "control"
        assert events.ranking("r2") == {
            "request_id": "r2",
            "user_id": None,
            "bucket": "diverse",
            "endpoint": "recommend",
            "timestamp": pytest.approx(time.time(), abs=120),
            "item_ids": [],
        }
        assert events.ranking("nope") is None
        assert events.delete_rankings_before(time.time() + 1) == 2
    finally:
        log.close()


def test_concurrent_writers_through_two_handles_get_increasing_ids(database_url: str) -> None:
    handles = [Database(database_url), Database(database_url)]
    errors: list[BaseException] = []

    def write(handle: Database, user: str) -> None:
        try:
            store = EventStore(handle)
            for k in range(30):
                store.add([StoredEvent(user, f"i{k}", "click", 1.7e9 + k)] * 3)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(h, f"w{n}-{t}"))
        for n, h in enumerate(handles)
        for t in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert errors == []
        store = EventStore(handles[1])
        ids = [p[0] for p in store.positives_after(0)]
        assert len(ids) == 2 * 3 * 30 * 3 == store.count()
        assert ids == sorted(set(ids))
    finally:
        for h in handles:
            h.close()


OLD_SCHEMA = """
CREATE TABLE items (id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    categories TEXT NOT NULL, features TEXT NOT NULL, created_at REAL, encoder TEXT,
    embedding BLOB, updated_at REAL NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, type TEXT NOT NULL, timestamp REAL NOT NULL, bucket TEXT,
    request_id TEXT, position INTEGER, value REAL);
CREATE INDEX events_user ON events(user_id, timestamp);
CREATE TABLE rankings (request_id TEXT PRIMARY KEY, user_id TEXT, bucket TEXT NOT NULL,
    endpoint TEXT NOT NULL, timestamp REAL NOT NULL, item_ids TEXT NOT NULL);
"""


def test_a_sqlite_file_from_before_alembic_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.executescript(OLD_SCHEMA)
    vec = vectors(1)[0].tobytes()
    for item_id in ("z", "y"):  # insertion order, not id order
        raw.execute(
            "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)",
            (item_id, item_id.upper(), "text", '["c"]', "{}", None, "enc", vec, 1.0),
        )
    raw.execute(
        "INSERT INTO events (user_id, item_id, type, timestamp) VALUES ('u', 'z', 'click', 5.0)"
    )
    raw.commit()
    raw.close()
    db = Database(path)
    try:
        assert schema_revision(db.engine, VERSION_TABLE) == "0001"
        store = CatalogueStore(db)
        version, stored = store.load_all()
        assert version == 0 and [s.item.id for s in stored] == ["z", "y"]
        assert np.array_equal(stored[0].vector, vectors(1)[0])
        assert store.seed(items(["new"])) is False  # the old file's items are the catalogue
        assert [e.item_id for e in EventStore(db).for_user("u")] == ["z"]
        store.upsert(items(["x"]), vectors(1), "enc")
        assert [s.item.id for s in store.load_all()[1]] == ["z", "y", "x"]
    finally:
        db.close()
