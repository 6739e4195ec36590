"""Kill -9 the trend stage and restart it: window state recovered, the alert not repeated."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from finance_monitor.messages import ScoredRecord
from finance_monitor.storage import MonitorStore
from tests.integration.finance_monitor.fm_support import (
    cli_process,
    create_topics,
    fm_env,
    produce,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration


def _records(start: float, first: int, last: int) -> list[ScoredRecord]:
    """Scored records for topic:Oil, 20 per 10 s window; windows 6-7 are 90% negative."""
    out = []
    for i in range(first, last):
        t = start + i * 0.5
        window = int(i // 20)
        negative = (i % 10 == 0) if window not in (6, 7) else (i % 10 != 0)
        out.append(
            ScoredRecord(
                id=f"m-{i}",
                series="topic:Oil",
                event_time=t,
                published_at="",
                source="test",
                title=None,
                text="",
                topic="Oil",
                topic_confidence=1.0,
                sentiment="negative" if negative else "neutral",
                sentiment_scores={},
                tickers=[],
                ingest_ts_ms=0,
                scored_ts_ms=0,
            )
        )
    return out


def test_trend_restart_recovers_windows_and_does_not_repeat_alerts(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir, KEEL_FM_TOPIC_PARTITIONS="1")
    create_topics(env)
    topic = env["KEEL_FM_SCORED_TOPIC"]
    start = (time.time() // 10) * 10
    store = MonitorStore(Path(env["KEEL_FM_STATE_DIR"]) / "finance_monitor.db")

    def send(first: int, last: int) -> None:
        recs = _records(start, first, last)
        produce(
            kafka_bootstrap,
            topic,
            [r.to_json_bytes() for r in recs],
            [r.series.encode() for r in recs],
        )

    try:
        with cli_process(["trend"], env, tmp_path / "trend.log") as trend:
            send(
                0, 175
            )  # up to t=87: windows 0-7 closed (watermark 86), surge alert fired; window 8 open
            alert = wait_for(lambda: store.list_alerts(series="topic:Oil"), 120, "the surge alert")
            wait_for(
                lambda: store.list_alerts(series="topic:Oil")[0]["dispatch_state"] == "sent",
                60,
                "delivery",
            )
            time.sleep(2.0)  # let the periodic checkpoint cover the open window 8
            trend.send_signal(signal.SIGKILL)
            trend.wait(timeout=10)
        assert len(alert) == 1
        with cli_process(["trend"], env, tmp_path / "trend2.log"):
            send(175, 260)  # finishes window 8 (records 160-179) and moves the watermark past it
            points = wait_for(
                lambda: [p for p in store.trend_series("topic:Oil") if p["start"] == start + 80],
                120,
                "window 8 to close after the restart",
            )
            assert (
                points[0]["count"] == 20
            )  # 15 records before the kill + 5 after: state was recovered
            time.sleep(3.0)
            assert len(store.list_alerts(series="topic:Oil")) == 1
        alerts = read_topic(kafka_bootstrap, env["KEEL_FM_ALERTS_TOPIC"], lambda r: False, 5)
        assert [json.loads(r.value)["key"] for r in alerts] == [alert[0]["key"]]
    finally:
        store.close()
