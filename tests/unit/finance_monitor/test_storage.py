"""The store on SQLite and PostgreSQL: atomic trend commits, alert de-duplication, fenced
partition claims, silences, outbox claims, rules, adopting a pre-Alembic SQLite file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance_monitor.errors import NotFoundError
from finance_monitor.rules import Alert, RuleSpec, load_rules_file
from finance_monitor.silencing import Matcher
from finance_monitor.storage import (
    VERSION_TABLE,
    Checkpoint,
    MonitorStore,
    PartitionFencedError,
    Receiver,
)
from finance_monitor.windows import ClosedWindow
from keel_service.db import schema_revision


def _alert(key: str, series: str = "topic:Oil") -> Alert:
    labels = {
        "rule": "r",
        "kind": "negative_surge",
        "series": series,
        "series_kind": "topic",
        "severity": "critical",
    }
    return Alert(
        key,
        "r",
        "negative_surge",
        series,
        "critical",
        "tumbling",
        0,
        60,
        0.6,
        0.1,
        0.3,
        30,
        "surge",
        labels,
    )


@pytest.fixture()
def store(database_url: str) -> Iterator[MonitorStore]:
    s = MonitorStore(database_url)
    yield s
    s.close()


def test_replayed_alert_is_stored_once_and_checkpoint_round_trips(store: MonitorStore) -> None:
    window = ClosedWindow("tumbling", "topic:Oil", 0, 60, 10, 6, 2, 2)
    new = store.commit_trend_batch(
        "g", "t", {0: Checkpoint(42, {"x": 1})}, [window], [_alert("k1")]
    )
    assert [a.key for a in new] == ["k1"]
    assert store.commit_trend_batch("g", "t", {}, [window], [_alert("k1")]) == []
    assert store.count_alerts() == 1
    assert store.load_checkpoint("g", "t", 0) == Checkpoint(42, {"x": 1})
    assert store.load_checkpoint("g", "t", 1) is None
    (point,) = store.trend_series("topic:Oil")
    assert point["negative_share"] == pytest.approx(0.6)


def test_silenced_alerts_are_never_pending(store: MonitorStore) -> None:
    store.add_silence(
        [Matcher("series", "topic:Oil")], time.time() - 1, time.time() + 60, "t", "maintenance"
    )
    store.commit_trend_batch("g", "t", {}, [], [_alert("a"), _alert("b", series="topic:Gold")])
    claimed = store.claim_pending_alerts("me", older_than=time.time() + 1)
    assert [a.key for a in claimed] == ["b"]
    assert store.get_alert("a")["dispatch_state"] == "silenced"


def test_claims_are_exclusive_and_delivery_is_recorded(store: MonitorStore) -> None:
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    assert len(store.claim_pending_alerts("one", older_than=time.time() + 1)) == 1
    assert store.claim_pending_alerts("two", older_than=time.time() + 1) == []
    store.mark_delivered(["a"], attempts=2, error=None)
    assert store.get_alert("a")["dispatch_state"] == "sent"
    assert store.acknowledge_alert("a", "alice")["status"] == "acknowledged"
    with pytest.raises(NotFoundError):
        store.acknowledge_alert("nope", "alice")


def test_rules_are_seeded_once_and_changes_bump_the_version(store: MonitorStore) -> None:
    assert store.seed_rules(load_rules_file(None))
    assert not store.seed_rules([])
    version = store.rules_version()
    store.upsert_rule(RuleSpec(id="extra", kind="volume_spike"))
    assert store.rules_version() == version + 1
    store.delete_rule("extra")
    with pytest.raises(NotFoundError):
        store.get_rule("extra")


def test_a_fenced_writer_writes_nothing_and_the_new_owner_resumes_its_checkpoint(
    database_url: str,
) -> None:
    first, second = MonitorStore(database_url), MonitorStore(database_url)
    try:
        old = first.claim_partition("g", "t", 0, "host-a")
        assert old.epoch == 1 and old.checkpoint is None
        window = ClosedWindow("tumbling", "topic:Oil", 0, 60, 10, 6, 2, 2)
        first.commit_trend_batch(
            "g", "t", {0: Checkpoint(10, {"n": 10})}, [window], [], epochs={0: old.epoch}
        )
        # host-b takes the partition over (host-a paused past its session timeout)
        new = second.claim_partition("g", "t", 0, "host-b")
        assert new.epoch == 2 and new.checkpoint == Checkpoint(10, {"n": 10})
        zombie_window = ClosedWindow("tumbling", "topic:Oil", 60, 120, 5, 1, 2, 2)
        with pytest.raises(PartitionFencedError) as fenced:
            first.commit_trend_batch(
                "g",
                "t",
                {0: Checkpoint(15, {"n": 15})},
                [zombie_window],
                [_alert("zombie")],
                epochs={0: old.epoch},
            )
        assert fenced.value.partitions == [0]
        # nothing of the zombie's batch was written
        assert second.load_checkpoint("g", "t", 0) == Checkpoint(10, {"n": 10})
        assert second.count_alerts() == 0
        assert [p["start"] for p in second.trend_series("topic:Oil")] == [0]
        second.commit_trend_batch(
            "g", "t", {0: Checkpoint(20, {"n": 20})}, [], [], epochs={0: new.epoch}
        )
        assert first.load_checkpoint("g", "t", 0) == Checkpoint(20, {"n": 20})
        assert first.partition_epoch("g", "t", 0) == 2
        # epochs are per group, topic and partition
        assert first.claim_partition("g", "t", 1, "host-a").epoch == 1
        assert first.claim_partition("other", "t", 0, "host-a").epoch == 1
    finally:
        first.close()
        second.close()


def test_concurrent_claims_of_one_partition_get_distinct_epochs(database_url: str) -> None:
    stores = [MonitorStore(database_url) for _ in range(4)]
    epochs: list[int] = []
    lock = threading.Lock()

    def claim(s: MonitorStore, owner: str) -> None:
        for _ in range(5):
            epoch = s.claim_partition("g", "t", 3, owner).epoch
            with lock:
                epochs.append(epoch)

    threads = [threading.Thread(target=claim, args=(s, f"o{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(epochs) == list(range(1, 21))
        assert stores[0].partition_epoch("g", "t", 3) == 20
    finally:
        for s in stores:
            s.close()


def test_racing_queuers_queue_each_alert_once(database_url: str) -> None:
    stores = [MonitorStore(database_url) for _ in range(3)]
    stores[0].commit_trend_batch(
        "g", "t", {}, [], [_alert(f"k{i}", f"topic:S{i}") for i in range(60)]
    )
    receiver = Receiver("webhook:x", "x.example.com")
    queued: list[int] = []

    def enqueue(s: MonitorStore) -> None:
        while n := s.enqueue_deliveries(
            [receiver],
            time.time() + 1,
            lambda alerts: [([a.key], {"alerts": [a.key]}) for a in alerts],
            limit=7,
        ):
            queued.append(n)

    threads = [threading.Thread(target=enqueue, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sum(queued) == 60
        payloads = [d["payload"] for d in stores[0].list_deliveries(receiver.id)]
        assert len(payloads) == 60 and len(set(payloads)) == 60
        assert {a["dispatch_state"] for a in stores[0].list_alerts(limit=100)} == {"queued"}
    finally:
        for s in stores:
            s.close()


def test_times_keep_sub_second_precision_and_alerts_list_newest_first(
    store: MonitorStore,
) -> None:
    start = 1_750_000_000.123456
    window = ClosedWindow("tumbling", "topic:Oil", start, start + 10, 4, 1, 2, 1)
    store.commit_trend_batch("g", "t", {}, [window], [_alert("a"), _alert("b", "topic:Gold")])
    store.commit_trend_batch("g", "t", {}, [window], [_alert("c", "topic:Tin")])  # replay
    (point,) = store.trend_series("topic:Oil")
    assert point["start"] == start and point["end"] == start + 10
    listed = store.list_alerts()
    assert listed[0]["key"] == "c"
    first_rowid = min(a["rowid"] for a in listed)
    newer = store.list_alerts(after_rowid=first_rowid)
    assert len(newer) == 2 and "seq" not in newer[0]
    assert store.list_series() == [
        {"series": "topic:Oil", "windows": 1, "last_end": start + 10, "messages": 4}
    ]
    assert store.last_trend_point_id() == point["id"]


OLD_SCHEMA = """
CREATE TABLE checkpoints (
    consumer_group TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition));
CREATE TABLE alerts (
    key TEXT PRIMARY KEY, rule_id TEXT NOT NULL, kind TEXT NOT NULL, series TEXT NOT NULL,
    severity TEXT NOT NULL, window_spec TEXT NOT NULL, window_start REAL NOT NULL,
    window_end REAL NOT NULL, value REAL NOT NULL, baseline REAL NOT NULL, threshold REAL NOT NULL,
    volume INTEGER NOT NULL, summary TEXT NOT NULL, labels TEXT NOT NULL, created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'firing', ack_by TEXT, ack_at REAL,
    dispatch_state TEXT NOT NULL DEFAULT 'pending', dispatch_owner TEXT,
    dispatch_attempts INTEGER NOT NULL DEFAULT 0, dispatch_error TEXT, sent_at REAL);
CREATE INDEX alerts_dispatch ON alerts (dispatch_state, created_at);
CREATE TABLE silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE rules (id TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trend_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL, series TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL, count INTEGER NOT NULL, negative INTEGER NOT NULL,
    neutral INTEGER NOT NULL, positive INTEGER NOT NULL, negative_share REAL NOT NULL,
    sentiment_index REAL NOT NULL, created_at REAL NOT NULL, UNIQUE (spec, series, start));
CREATE INDEX trend_points_created ON trend_points (created_at);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, receiver_label TEXT NOT NULL,
    payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    claimed_by TEXT, claimed_at REAL, last_error TEXT, created_at REAL NOT NULL, sent_at REAL);
CREATE INDEX deliveries_due ON deliveries (receiver, state, next_attempt_at);
CREATE TABLE delivery_alerts (
    alert_key TEXT NOT NULL, delivery_id INTEGER NOT NULL, PRIMARY KEY (alert_key, delivery_id));
CREATE INDEX delivery_alerts_delivery ON delivery_alerts (delivery_id);
"""


def test_a_sqlite_file_made_before_alembic_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute(
        "INSERT INTO alerts (key, rule_id, kind, series, severity, window_spec, window_start,"
        " window_end, value, baseline, threshold, volume, summary, labels, created_at)"
        " VALUES ('old', 'r', 'negative_surge', 'topic:Oil', 'critical', 'tumbling', 0, 60,"
        " 0.6, 0.1, 0.3, 30, 'surge', '{}', 1.0)"
    )
    db.execute("INSERT INTO checkpoints VALUES ('g', 't', 0, 42, '{\"x\": 1}', 1.0)")
    db.execute("INSERT INTO meta VALUES ('rules_seeded', '1')")
    db.commit()
    db.close()
    store = MonitorStore(path)
    try:
        assert schema_revision(store.engine, VERSION_TABLE) == "0002"
        assert store.get_alert("old")["rowid"] == 1
        assert store.claim_partition("g", "t", 0, "me").checkpoint == Checkpoint(42, {"x": 1})
        assert not store.seed_rules(load_rules_file(None))  # seeded before: kept as is
        store.commit_trend_batch("g", "t", {}, [], [_alert("new")])
        assert [a["key"] for a in store.list_alerts()] == ["new", "old"]
    finally:
        store.close()
    again = MonitorStore(path)  # a second start: nothing left to migrate
    try:
        assert again.count_alerts() == 2
        names = set(sa.inspect(again.engine).get_table_names())
        assert {"partition_owners", "alerts", "alert_evidence", VERSION_TABLE} <= names
    finally:
        again.close()
