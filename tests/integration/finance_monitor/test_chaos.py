"""Chaos on a real broker: kill -9 of the scorer and of the trend stage mid-stream, and a
broker stop/start mid-stream. Afterwards no message is lost, duplicates come only from
in-flight work (counted), both stages caught up, and no alert is delivered twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finance_monitor.kafka_io import make_consumer
from finance_monitor.storage import MonitorStore
from tests.integration.finance_monitor.fm_support import (
    WebhookRecorder,
    cli_process,
    create_topics,
    fm_env,
    produce_items,
    read_topic,
    surge_items,
    topic_records,
    wait_for,
)

pytestmark = pytest.mark.integration
KAFKA_LOCAL = Path(__file__).resolve().parents[3] / "scripts" / "kafka_local.py"
BATCH = 32
PARTITIONS = 2


def _kafka_local(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(KAFKA_LOCAL), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture()
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A broker of this test only (it is stopped and restarted mid-stream)."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    state = tmp_path / "kafka"
    address = _kafka_local("start", "--dir", str(state))
    try:
        yield address, state
    finally:
        _kafka_local("stop", "--dir", str(state))


def _scored(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return topic_records(read_topic(bootstrap, topic, lambda r: False, 3))


def _trend_caught_up(bootstrap: str, store: MonitorStore, env: dict[str, str]) -> bool:
    from kafka.structs import TopicPartition

    topic = env["KEEL_FM_SCORED_TOPIC"]
    consumer = make_consumer(bootstrap, None)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        consumer.close()
    for tp, end in ends.items():
        checkpoint = store.load_checkpoint(env["KEEL_FM_TREND_GROUP"], topic, tp.partition)
        if end and (checkpoint is None or checkpoint.next_offset < end):
            return False
    return True


def test_kill9_of_each_stage_and_a_broker_restart_lose_nothing(
    own_broker: tuple[str, Path], fm_models_dir: Path, tmp_path: Path
) -> None:
    bootstrap, broker_dir = own_broker
    with WebhookRecorder() as hook:
        env = fm_env(
            bootstrap,
            tmp_path / "state",
            fm_models_dir,
            partitions=PARTITIONS,
            KEEL_FM_BATCH_SIZE=str(BATCH),
            KEEL_FM_WEBHOOK_URLS=hook.url,
            KEEL_FM_RESTART_BACKOFF_MAX_S="2",
        )
        create_topics(env)
        raw, scored = env["KEEL_FM_RAW_TOPIC"], env["KEEL_FM_SCORED_TOPIC"]
        items = surge_items(surge=True, run_id="chaos")
        ids = {i.message["id"] for i in items}
        third = len(items) // 3
        store = MonitorStore(Path(env["KEEL_FM_STATE_DIR"]) / "finance_monitor.db")
        scorer_log, trend_log = tmp_path / "scorer.log", tmp_path / "trend.log"
        try:
            produce_items(bootstrap, raw, items[:third])
            with cli_process(["trend"], env, trend_log) as trend:
                # 1. kill -9 the scorer mid-stream
                with cli_process(["scorer"], env, scorer_log) as scorer:
                    wait_for(lambda: len(_scored(bootstrap, scored)) > 200, 300, "scoring")
                    scorer.send_signal(signal.SIGKILL)
                    scorer.wait(timeout=10)
                assert len({r["id"] for r in _scored(bootstrap, scored)}) < len(ids)
                with cli_process(["scorer"], env, scorer_log):
                    produce_items(bootstrap, raw, items[third : 2 * third])
                    # 2. kill -9 the trend stage once it has checkpointed some state
                    wait_for(
                        lambda: (
                            store.load_checkpoint(env["KEEL_FM_TREND_GROUP"], scored, 0)
                            or store.load_checkpoint(env["KEEL_FM_TREND_GROUP"], scored, 1)
                        ),
                        300,
                        "a trend checkpoint",
                    )
                    trend.send_signal(signal.SIGKILL)
                    trend.wait(timeout=10)
                    with cli_process(["trend"], env, tmp_path / "trend2.log"):
                        # 3. stop the broker mid-stream and start it again on its data
                        wait_for(
                            lambda: len(_scored(bootstrap, scored)) > third + 100,
                            300,
                            "more scoring",
                        )
                        _kafka_local("stop", "--dir", str(broker_dir))
                        time.sleep(3.0)
                        assert (
                            _kafka_local("start", "--dir", str(broker_dir), "--keep") == bootstrap
                        )
                        produce_items(bootstrap, raw, items[2 * third :])

                        def all_scored() -> list[dict[str, Any]]:
                            recs = _scored(bootstrap, scored)
                            return recs if {r["id"] for r in recs} >= ids else []

                        records = wait_for(all_scored, 600, "every message scored", interval_s=3)
                        wait_for(
                            lambda: _trend_caught_up(bootstrap, store, env),
                            300,
                            "the trend stage to consume the whole scored topic",
                        )
                        time.sleep(5.0)  # let the dispatcher deliver what it queued
        finally:
            store_alerts = store.list_alerts(limit=1000)
            store.close()

        counts = Counter(r["id"] for r in records)
        duplicates = sum(c - 1 for c in counts.values())
        print(f"chaos: {len(counts)} messages, {duplicates} duplicates from in-flight batches")
        assert set(counts) == ids  # nothing lost, nothing invented
        # in-flight work only: one batch per scorer kill / broker restart, per partition
        assert duplicates <= 3 * BATCH * PARTITIONS
        # no alert delivered twice, on any channel
        webhook_keys = hook.alert_keys()
        assert len(webhook_keys) == len(set(webhook_keys))
        topic_keys = [
            json.loads(r.value)["key"]
            for r in read_topic(bootstrap, env["KEEL_FM_ALERTS_TOPIC"], lambda r: False, 5)
        ]
        assert len(topic_keys) == len(set(topic_keys))
        assert set(webhook_keys) <= {a["key"] for a in store_alerts}
