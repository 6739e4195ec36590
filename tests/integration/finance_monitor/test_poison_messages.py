"""Poison corpus on the real broker: every kind of bad record, on every partition, goes to
the DLQ with a reason; lag returns to 0; valid messages are scored exactly once; the trend
stage keeps accepting records afterwards (its own bad input is dead-lettered too)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finance_monitor.kafka_io import make_consumer, make_producer
from keel_service.servers import free_port
from tests.integration.finance_monitor.fm_support import (
    cli_process,
    create_topics,
    fm_env,
    read_topic,
    topic_records,
    wait_for,
)

pytestmark = pytest.mark.integration
PARTITIONS = 3


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _valid(message_id: str, **overrides: Any) -> bytes:
    payload = {
        "id": message_id,
        "published_at": _iso(time.time()),
        "source": "wire",
        "text": "Harbor Bancorp raises its dividend by 10%",
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


def raw_poison(partition: int) -> dict[str, tuple[bytes | None, str]]:
    """Kind -> (record value, expected part of the DLQ reason)."""
    now = time.time()
    return {
        "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "levels deep"),
        "deep object nesting": (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "levels deep"),
        "invalid UTF-8": (b"\xff\xfe\xfa not utf-8", "not UTF-8"),
        "invalid JSON": (b"{this is not json", "invalid JSON"),
        "not an object": (b"[1, 2, 3]", "expected a JSON object"),
        "tombstone": (None, "tombstone"),
        "wrong type": (_valid(f"p{partition}-type", text=12345), "text: Input should be"),
        "wrong list type": (_valid(f"p{partition}-tick", tickers="ACME"), "tickers:"),
        "NaN": (_valid(f"p{partition}-nan").replace(b"}", b', "x": NaN}'), "NaN"),
        "Infinity": (_valid(f"p{partition}-inf").replace(b"}", b', "x": -Infinity}'), "Infinity"),
        "NUL byte": (b'{"id": "p-nul",\x00 "text": "x"}', "NUL"),
        "escaped NUL": (_valid(f"p{partition}-nul2", text="a\x00b"), "NUL"),
        "oversize text": (_valid(f"p{partition}-big", text="x" * 1_000_000), "longer than"),
        "far future": (
            _valid(f"p{partition}-future", published_at="2099-01-01T00:00:00Z"),
            "in the future",
        ),
        "one hour ahead": (
            _valid(f"p{partition}-hour", published_at=_iso(now + 3600)),
            "in the future",
        ),
        "far past": (
            _valid(f"p{partition}-past", published_at="2001-01-01T00:00:00Z"),
            "in the past",
        ),
        "missing field": (
            json.dumps({"id": f"p{partition}-missing", "source": "w", "text": "t"}).encode(),
            "published_at: required field is missing",
        ),
        "duplicate id": (
            _valid(f"ok-{partition}-0", text="A different story under a used id"),
            "id: duplicate",
        ),
    }


def scored_poison(partition: int) -> dict[str, tuple[bytes, str]]:
    """Bad records written straight to the scored topic (the trend stage's input)."""
    now = time.time()
    good = {
        "id": f"s{partition}",
        "series": "topic:Dividend",
        "event_time": now,
        "published_at": _iso(now),
        "source": "w",
        "title": None,
        "text": "t",
        "topic": "Dividend",
        "topic_confidence": 0.9,
        "sentiment": "positive",
        "sentiment_scores": {"positive": 1.0},
        "tickers": [],
        "ingest_ts_ms": 0,
        "scored_ts_ms": 0,
    }

    def bad(**overrides: Any) -> bytes:
        return json.dumps({**good, **overrides}).encode()

    return {
        "trend deep nesting": (b"[" * 100_000 + b"]" * 100_000, "levels deep"),
        "trend far future": (bad(event_time=now + 10 * 365 * 86400), "in the future"),
        "trend bad sentiment": (bad(sentiment="furious"), "sentiment:"),
        "trend NaN": (bad().replace(b'"topic_confidence": 0.9', b'"topic_confidence": NaN'), "NaN"),
        "trend wrong type": (bad(event_time="soon"), "event_time:"),
    }


def _send_all(bootstrap: str, topic: str, items: list[tuple[int, bytes | None, Any]]) -> list[Any]:
    """Send (partition, value, key) items in order; returns their RecordMetadata."""
    producer = make_producer(bootstrap)
    try:
        futures = [producer.send(topic, value=v, key=k, partition=p) for p, v, k in items]
        producer.flush(timeout=60)
        return [f.get(timeout=60) for f in futures]
    finally:
        producer.close(timeout=10)


def _valid_batch(prefix: str, count: int) -> list[tuple[int, bytes, bytes]]:
    return [
        (p, _valid(f"{prefix}-{p}-{i}"), f"{prefix}-{p}-{i}".encode())
        for i in range(count)
        for p in range(PARTITIONS)
    ]


def _accepted(metrics_port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    match = re.search(r'finance_trend_records_total\{result="accepted"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


def _lag(bootstrap: str, group: str, topic: str) -> int:
    from kafka.admin import KafkaAdminClient
    from kafka.structs import TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_consumer_group_offsets(group)
    finally:
        admin.close()
    consumer = make_consumer(bootstrap, None)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
    return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)


def test_poison_corpus_on_every_partition_is_dead_lettered_and_nothing_stalls(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(
        kafka_bootstrap,
        tmp_path / "state",
        fm_models_dir,
        partitions=PARTITIONS,
        KEEL_FM_BATCH_SIZE="16",
    )
    create_topics(env)
    raw, scored, dlq = (
        env["KEEL_FM_RAW_TOPIC"],
        env["KEEL_FM_SCORED_TOPIC"],
        env["KEEL_FM_DLQ_TOPIC"],
    )
    metrics_port = free_port()
    scorer_log = tmp_path / "scorer.log"
    with (
        cli_process(["trend", "--metrics-port", str(metrics_port)], env, tmp_path / "trend.log"),
        cli_process(["scorer"], env, scorer_log),
    ):
        wait_for(lambda: "[scorer] consuming" in scorer_log.read_text(), 240, "the scorer")
        # phase 1: valid messages on every partition (ok-P-0 is reused by "duplicate id")
        _send_all(kafka_bootstrap, raw, _valid_batch("ok", 10))
        wait_for(lambda: _accepted(metrics_port) > 0, 180, "the trend stage to accept records")
        before = _accepted(metrics_port)

        # phase 2: the poison corpus, every kind on every partition, both stages
        expected: dict[tuple[str, int, int], tuple[str, str]] = {}
        items = [
            (p, value, b"poison") for p in range(PARTITIONS) for value, _ in raw_poison(p).values()
        ]
        kinds = [
            (kind, reason) for p in range(PARTITIONS) for kind, (_, reason) in raw_poison(p).items()
        ]
        for meta, (kind, reason) in zip(_send_all(kafka_bootstrap, raw, items), kinds, strict=True):
            expected[(raw, meta.partition, meta.offset)] = (kind, reason)
        items = [
            (p, value, b"poison")
            for p in range(PARTITIONS)
            for value, _ in scored_poison(p).values()
        ]
        kinds = [
            (kind, reason)
            for p in range(PARTITIONS)
            for kind, (_, reason) in scored_poison(p).items()
        ]
        for meta, (kind, reason) in zip(
            _send_all(kafka_bootstrap, scored, items), kinds, strict=True
        ):
            expected[(scored, meta.partition, meta.offset)] = (kind, reason)

        # phase 3: valid messages again
        _send_all(kafka_bootstrap, raw, _valid_batch("after", 10))
        valid_ids = {
            f"{prefix}-{p}-{i}"
            for prefix in ("ok", "after")
            for p in range(PARTITIONS)
            for i in range(10)
        }

        dead = read_topic(kafka_bootstrap, dlq, lambda r: len(r) >= len(expected), timeout_s=240)

        def all_scored() -> list[dict[str, Any]]:
            recs = topic_records(
                # the poison this test wrote to the scored topic itself is keyed "poison"
                [
                    r
                    for r in read_topic(kafka_bootstrap, scored, lambda r: False, 3)
                    if r.key != b"poison"
                ]
            )
            return recs if {r["id"] for r in recs} >= valid_ids else []

        records = wait_for(all_scored, 240, "every valid message to be scored", interval_s=2)
        wait_for(
            lambda: _lag(kafka_bootstrap, env["KEEL_FM_SCORER_GROUP"], raw) == 0,
            120,
            "the scorer's lag to return to 0",
        )
        wait_for(
            lambda: _accepted(metrics_port) >= before + len(valid_ids) / 2,
            180,
            "the trend stage to keep accepting after the poison",
        )

    # every poison record is in the DLQ once, from the right stage, with its reason
    by_source: dict[tuple[str, int, int], Any] = {}
    for rec in dead:
        headers = dict(rec.headers)
        topic, partition, offset = headers["dlq.source"].decode().rsplit("/", 2)
        by_source[(topic, int(partition), int(offset))] = headers
    missing = [expected[k][0] for k in expected if k not in by_source]
    assert missing == []
    assert len(dead) == len(expected)  # and nothing valid was dead-lettered
    for key, (kind, reason) in expected.items():
        headers = by_source[key]
        assert reason in headers["dlq.reason"].decode(), (kind, headers["dlq.reason"])
        assert headers["dlq.stage"] == (b"trend" if key[0] == scored else b"scorer")
        assert len(headers["dlq.sha256"]) == 64
    # every valid message scored exactly once (no poison id among them)
    counts = Counter(r["id"] for r in records)
    assert set(counts) == valid_ids
    assert max(counts.values()) == 1
