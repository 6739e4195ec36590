"""The scorer's librdkafka ``BatchConsumer`` on the real broker: records, commits, lag."""

from __future__ import annotations

import time
import uuid

import pytest

from finance_monitor.kafka_io import (
    BatchConsumer,
    Record,
    ensure_topics,
    make_batch_consumer,
    make_producer,
)

pytestmark = pytest.mark.integration


def _drain(consumer: BatchConsumer, count: int, timeout_s: float = 120.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        batch = consumer.poll(7, 0.5)
        assert len(batch) <= 7  # never more than asked for
        got.extend(batch)
    return got


def test_records_commits_and_lag_on_the_real_broker(kafka_bootstrap: str) -> None:
    topic = f"batch-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 3})
    producer = make_producer(kafka_bootstrap)
    try:
        sent = {}
        for i in range(40):
            delivery = producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
            sent[f"k{i}".encode()] = delivery
        tombstone = producer.send(topic, key=b"gone", value=None)
        producer.flush(timeout=60)
        where = {key: d.get(timeout=60) for key, d in sent.items()}
        where[b"gone"] = tombstone.get(timeout=60)
    finally:
        producer.close(timeout=10)

    before = time.time() * 1000
    first = make_batch_consumer(kafka_bootstrap, group, [topic])
    try:
        got = _drain(first, 41)
        assert len(got) == 41
        for rec in got:
            meta = where[rec.key]
            assert (rec.topic, rec.partition, rec.offset) == (topic, meta.partition, meta.offset)
            assert rec.value == (None if rec.key == b"gone" else b"v" + rec.key[1:])
            assert 0 < rec.timestamp <= before + 60_000
        assert first.lag() == {(topic, p): 0 for p in range(3)}
        # Commit only each partition's first record: the rest is this group's to read again.
        firsts: dict[tuple[str, int], int] = {}
        for rec in got:
            tp = (rec.topic, rec.partition)
            firsts[tp] = min(firsts.get(tp, rec.offset), rec.offset)
        assert first.commit({tp: offset + 1 for tp, offset in firsts.items()}) is True
    finally:
        first.close()

    second = make_batch_consumer(kafka_bootstrap, group, [topic])
    try:
        again = _drain(second, 41 - len(firsts))
        assert sorted((r.partition, r.offset) for r in again) == sorted(
            (r.partition, r.offset) for r in got if r.offset != firsts[(r.topic, r.partition)]
        )
        assert second.poll(100, 1.0) == []  # nothing more
    finally:
        second.close()
