"""Two trend processes on one PostgreSQL split the partitions; kill -9 one mid-stream and the
survivor resumes its partitions from their checkpoints: every window and alert exactly once."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finance_monitor.messages import ScoredRecord
from finance_monitor.rules import load_rules_file
from finance_monitor.storage import MonitorStore, partition_owners_table
from finance_monitor.trend import TrendProcessor, default_window_specs
from tests.integration.finance_monitor.fm_support import (
    WINDOW_S,
    WebhookRecorder,
    cli_process,
    create_topics,
    fm_env,
    produce,
    read_topic,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PARTITIONS = 4
SURGE_SERIES = "topic:Oil"
PER_WINDOW = 20  # records per series and 10 s window
WINDOWS = 13
KILL_AFTER_WINDOW = 5  # the first phase sends windows 0-4; the surge is in windows 7-8


def _partition(series: str) -> int:
    """The partition kafka-python's default partitioner gives a record keyed by ``series``."""
    from kafka.partitioner.default import murmur2

    return (murmur2(series.encode()) & 0x7FFFFFFF) % PARTITIONS


def _series_on_every_partition() -> list[str]:
    """The surge series plus topic series so that every partition carries records."""
    chosen = {_partition(SURGE_SERIES): SURGE_SERIES}
    for name in ("Gold", "Dividend", "Earnings", "Retail", "Banks", "Tech", "Energy", "Autos"):
        series = f"topic:{name}"
        chosen.setdefault(_partition(series), series)
    assert len(chosen) == PARTITIONS
    return sorted(chosen.values())


def _stream(start: float, series: list[str], first_window: int, last_window: int) -> list:
    """Scored records, interleaved over ``series`` in event-time order; the surge series
    turns 90% negative in windows 7 and 8 (10% otherwise)."""
    out = []
    step = WINDOW_S / PER_WINDOW
    for i in range(first_window * PER_WINDOW, last_window * PER_WINDOW):
        window = i // PER_WINDOW
        for s in series:
            surge = s == SURGE_SERIES and window in (7, 8)
            negative = (i % 10 != 0) if surge else (i % 10 == 0)
            out.append(
                ScoredRecord(
                    id=f"{s}-{i}",
                    series=s,
                    event_time=start + i * step,
                    published_at="",
                    source="test",
                    title=None,
                    text="",
                    topic=s.removeprefix("topic:"),
                    topic_confidence=1.0,
                    sentiment="negative" if negative else "neutral",
                    sentiment_scores={},
                    tickers=[],
                    ingest_ts_ms=0,
                    scored_ts_ms=0,
                )
            )
    return out


def _expected(records: list) -> tuple[set[tuple[str, str, float]], dict[str, Any]]:
    """Windows and alert keys one uninterrupted processor per partition produces."""
    specs = default_window_specs(WINDOW_S, 3 * WINDOW_S, WINDOW_S)
    rules = load_rules_file(None)
    windows: set[tuple[str, str, float]] = set()
    alerts: dict[str, Any] = {}
    for p in range(PARTITIONS):
        processor = TrendProcessor(specs, rules, 2.0, WINDOW_S, 600.0)
        out = processor.process(r for r in records if _partition(r.series) == p)
        windows |= {(w.spec, w.series, w.start) for w in out.closed}
        alerts.update((a.key, a) for a in out.alerts)
    return windows, alerts


def _stored_windows(store: MonitorStore, series: list[str]) -> set[tuple[str, str, float]]:
    return {
        (p["spec"], p["series"], p["start"])
        for s in series
        for spec in ("tumbling", "sliding")
        for p in store.trend_series(s, spec, limit=1000)
    }


def _owners(store: MonitorStore, group: str) -> dict[int, str]:
    import sqlalchemy as sa

    t = partition_owners_table.c
    with store.engine.connect() as db:
        rows = db.execute(sa.select(t.partition, t.owner).where(t.consumer_group == group)).all()
    return {int(r.partition): r.owner for r in rows}


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


def test_survivor_resumes_a_killed_trend_process_partitions_exactly_once(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    series = _series_on_every_partition()
    start = (time.time() // WINDOW_S) * WINDOW_S - 300.0  # recent, inside the skew bounds
    records = _stream(start, series, 0, WINDOWS)
    expected_windows, alerts_by_key = _expected(records)
    expected_alerts = set(alerts_by_key)
    # the surge is detectable, and only after the kill
    assert any(
        a.series == SURGE_SERIES and a.kind == "negative_surge" for a in alerts_by_key.values()
    )
    first_phase = [r for r in records if r.event_time < start + KILL_AFTER_WINDOW * WINDOW_S]
    second_phase = records[len(first_phase) :]

    store = MonitorStore(postgres_url)
    with WebhookRecorder() as hook:
        env = fm_env(
            kafka_bootstrap,
            tmp_path / "state",
            tmp_path / "models",
            partitions=PARTITIONS,
            KEEL_FM_DATABASE_URL=postgres_url,
            KEEL_FM_WEBHOOK_URLS=hook.url,
        )
        create_topics(env)
        group, topic = env["KEEL_FM_TREND_GROUP"], env["KEEL_FM_SCORED_TOPIC"]

        def send(batch: list) -> None:
            produce(
                kafka_bootstrap,
                topic,
                [r.to_json_bytes() for r in batch],
                [r.series.encode() for r in batch],
            )

        try:
            with (
                cli_process(["trend"], env, tmp_path / "trend-a.log") as a,
                cli_process(["trend"], env, tmp_path / "trend-b.log") as b,
            ):
                pids = {a.pid: a, b.pid: b}
                owners = wait_for(
                    lambda: (
                        (o := _owners(store, group))
                        and len(o) == PARTITIONS
                        and {_pid(x) for x in o.values()} == set(pids)
                        and o
                    ),
                    240,
                    "both trend processes to own partitions",
                )
                send(first_phase)
                # tumbling windows 0-1 closed on every partition (the watermark is in window 4)
                early = {
                    w
                    for w in expected_windows
                    if w[0] == "tumbling" and w[2] < start + 2 * WINDOW_S
                }
                wait_for(lambda: early <= _stored_windows(store, series), 120, "the early windows")
                time.sleep(2.0)  # let the periodic checkpoint cover the open windows
                owners = _owners(store, group)
                victim = pids[_pid(owners[_partition(SURGE_SERIES)])]
                survivor = next(p for pid, p in pids.items() if pid != victim.pid)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                send(second_phase)
                wait_for(
                    lambda: (
                        set(_owners(store, group).values())
                        and {_pid(o) for o in _owners(store, group).values()} == {survivor.pid}
                    ),
                    120,
                    "the survivor to take every partition over",
                )
                wait_for(
                    lambda: expected_windows <= _stored_windows(store, series),
                    180,
                    "every window after the failover",
                )
                wait_for(
                    lambda: {a["key"] for a in store.list_alerts(limit=1000)} >= expected_alerts,
                    120,
                    "the expected alerts",
                )
                wait_for(
                    lambda: set(hook.alert_keys()) >= expected_alerts,
                    120,
                    "the webhook deliveries",
                )
                time.sleep(3.0)  # a duplicate, if any, would arrive now
                assert survivor.poll() is None  # the survivor kept running
        finally:
            stored_alerts = store.list_alerts(limit=1000)
            stored = _stored_windows(store, series)
            store.close()

    # every window, and only the expected ones, each stored once (unique key)
    assert stored == expected_windows
    keys = [a["key"] for a in stored_alerts]
    assert sorted(keys) == sorted(expected_alerts)
    # delivered exactly once: on the alerts topic and to the webhook
    published = read_topic(kafka_bootstrap, env["KEEL_FM_ALERTS_TOPIC"], lambda r: False, 10)
    published_keys = Counter(json.loads(r.value)["key"] for r in published)
    assert set(published_keys) == expected_alerts and max(published_keys.values()) == 1
    webhook_keys = Counter(hook.alert_keys())
    assert set(webhook_keys) == expected_alerts and max(webhook_keys.values()) == 1
