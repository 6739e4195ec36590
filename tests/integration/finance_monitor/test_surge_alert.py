"""A surge stream through the real server: exactly one alert for it, on the topic, store and webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keel_service.servers import start_app_server
from tests.integration.finance_monitor.fm_support import (
    CONTROL_TOPIC,
    LIVE_RATE,
    SURGE_TOPIC,
    WebhookRecorder,
    fm_env,
    produce_items,
    read_topic,
    surge_items,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_injected_surge_alerts_exactly_once(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    with WebhookRecorder() as hook:
        env = fm_env(
            kafka_bootstrap, tmp_path / "state", fm_models_dir, KEEL_FM_WEBHOOK_URLS=hook.url
        )
        with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as base:
            items = surge_items(surge=True, run_id="surge")
            produce_items(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items, rate=LIVE_RATE)

            def surge_alerts() -> list[dict]:
                alerts = httpx.get(
                    f"{base}/api/alerts", params={"series": f"topic:{SURGE_TOPIC}"}
                ).json()["alerts"]
                return [a for a in alerts if a.get("dispatch_state") == "sent"]

            (alert,) = wait_for(surge_alerts, 180, "the surge alert to be stored and delivered")
            # let the rest of the stream (windows after the surge) drain before counting
            wait_for(
                lambda: (
                    httpx.get(f"{base}/healthz").json()["workers"]["scorer"]["processed"]
                    >= len(items)
                ),
                180,
                "every message to be scored",
            )
            start = items[0].message["published_at"]
            assert alert["rule_id"] == "negative-surge-topic"
            assert alert["value"] > 0.5
            assert alert["window_start"] - _epoch(start) in (
                60.0,
                70.0,
            )  # within 2 windows of the surge

            control = httpx.get(
                f"{base}/api/alerts", params={"series": f"topic:{CONTROL_TOPIC}"}
            ).json()
            assert control["alerts"] == []
            topic_alerts = httpx.get(f"{base}/api/alerts").json()["alerts"]
            assert [a["key"] for a in topic_alerts if a["series"] == f"topic:{SURGE_TOPIC}"] == [
                alert["key"]
            ]

            records = read_topic(
                kafka_bootstrap, env["KEEL_FM_ALERTS_TOPIC"], lambda r: len(r) >= 1, timeout_s=30
            )
            on_topic = [json.loads(r.value) for r in records]
            assert [a["key"] for a in on_topic if a["series"] == f"topic:{SURGE_TOPIC}"] == [
                alert["key"]
            ]
            assert hook.alert_keys().count(alert["key"]) == 1
            assert not [k for k in hook.alert_keys() if k not in {a["key"] for a in topic_alerts}]

            trend = httpx.get(f"{base}/api/trends/topic/{SURGE_TOPIC}").json()["points"]
            assert len(trend) >= 8
            assert max(p["negative_share"] for p in trend) > 0.5

            metrics = httpx.get(f"{base}/metrics").text
            assert "finance_messages_scored_total" in metrics
            assert "finance_consumer_lag" in metrics or "finance_scoring_batch_seconds" in metrics
            # Drift: every scored message is in the sentiment mix of its source (a batch
            # may be between the two counters when scraped: read until they agree).
            deadline = time.monotonic() + 60
            while True:
                samples = [
                    s
                    for f in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
                    for s in f.samples
                ]
                scored = sum(s.value for s in samples if s.name == "finance_messages_scored_total")
                mix = {
                    (s.labels["source"], s.labels["sentiment"]): s.value
                    for s in samples
                    if s.name == "finance_sentiment_total"
                }
                if sum(mix.values()) == scored or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert sum(mix.values()) == scored > 0
            assert any(v > 0 for (_, sentiment), v in mix.items() if sentiment == "negative")


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
