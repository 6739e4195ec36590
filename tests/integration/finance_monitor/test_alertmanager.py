"""The finance monitor and a real Prometheus Alertmanager (scripts/alertmanager-local) on
the real broker: a surge alert reaches Alertmanager with its labels and evidence, is
resolved there when the surge ends, and a silence in Keel keeps it from being sent."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from finance_monitor.alertmanager import fingerprint
from keel_service.servers import start_app_server
from tests.integration.finance_monitor.fm_support import (
    API_KEY,
    LIVE_RATE,
    SURGE_TOPIC,
    fm_env,
    produce_items,
    surge_items,
    wait_for,
)

pytestmark = pytest.mark.integration

SERIES = f"topic:{SURGE_TOPIC}"
# Firing alerts are posted with endsAt = now + 4 x this: far beyond the test, so an alert
# that leaves Alertmanager's active list before then was resolved by Keel.
RESEND_S = 300
PER_WINDOW = 200


def _am_alerts(am: str, key: str) -> list[dict[str, Any]]:
    """Alertmanager's unresolved alerts that carry this Keel alert key."""
    alerts = httpx.get(f"{am}/api/v2/alerts", params={"filter": f'series="{SERIES}"'}).json()
    return [a for a in alerts if a["annotations"].get("alert_key") == key]


def _received(am: str) -> float:
    """Alertmanager's own count of alerts received through its API."""
    text = httpx.get(f"{am}/metrics").text
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^alertmanager_alerts_received_total\{[^}]*\} (\S+)$", text, re.M)
    )


def _surge_alert(base: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{base}/api/alerts", params={"series": SERIES}).json()["alerts"]
    return [a for a in alerts if a["rule_id"] == "negative-surge-topic"]


def test_a_surge_reaches_alertmanager_and_is_resolved_there(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path, alertmanager_url: str
) -> None:
    env = fm_env(
        kafka_bootstrap,
        tmp_path / "state",
        fm_models_dir,
        KEEL_FM_ALERTMANAGER_URL=alertmanager_url,
        KEEL_FM_ALERTMANAGER_RESEND_S=str(RESEND_S),
        KEEL_FM_PUBLIC_URL="http://dashboard.test:8102",
    )
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as base:
        # Two parts, so the alert stays firing until this test has seen it in
        # Alertmanager: the surge is in windows 6-7 of 11 (10 s each, 200 messages per
        # window). The first part ends 8.8 windows in, so the watermark (2 s behind the
        # newest event) closes the surge windows but not window 8, whose close would
        # resolve the alert; the rest of the stream follows once the alert is seen.
        items = surge_items(surge=True, run_id="am", per_window=PER_WINDOW)
        cut = int(8.8 * PER_WINDOW)
        produce_items(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items[:cut], rate=LIVE_RATE)
        (alert,) = wait_for(lambda: _surge_alert(base), 180, "the surge alert in Keel")
        key = alert["key"]
        (posted,) = wait_for(lambda: _am_alerts(alertmanager_url, key), 120, "it in Alertmanager")
        assert posted["labels"] == {
            "alertname": "NegativeSentimentSurge",
            "rule": "negative-surge-topic",
            "series": SERIES,
            "kind": "topic",
            "severity": "critical",
        }
        assert posted["fingerprint"] == fingerprint(posted["labels"])
        assert posted["generatorURL"] == f"http://dashboard.test:8102/api/alerts/{key}"
        notes = posted["annotations"]
        assert notes["dashboard"] == f"http://dashboard.test:8102/#alert={key}"
        assert "Negative sentiment surge on Earnings" in notes["summary"]
        assert notes["description"] and notes["headlines"]
        firing_ends = dt.datetime.fromisoformat(posted["endsAt"]).timestamp()
        assert firing_ends > time.time() + RESEND_S  # firing: Keel must resolve it

        # the evidence behind it: most negative first, capped, with the listed fields
        evidence = httpx.get(f"{base}/api/alerts/{key}").json()["evidence"]
        assert 1 <= len(evidence) <= 20
        assert [e["negative"] for e in evidence] == sorted(
            (e["negative"] for e in evidence), reverse=True
        )
        assert {"id", "text", "source", "sentiment", "probability", "event_time"} <= set(
            evidence[0]
        )
        assert notes["headlines"].splitlines()[0] == evidence[0]["text"]

        # the stream goes on with normal windows: the condition clears
        produce_items(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items[cut:], rate=LIVE_RATE)
        wait_for(
            lambda: httpx.get(f"{base}/api/alerts/{key}").json()["resolved"],
            180,
            "Keel to resolve the alert",
        )
        wait_for(lambda: not _am_alerts(alertmanager_url, key), 120, "Alertmanager to resolve it")
        assert time.time() < firing_ends  # resolved by Keel's post, not by expiry


def test_a_silence_in_keel_keeps_the_alert_from_alertmanager(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path, alertmanager_url: str
) -> None:
    env = fm_env(
        kafka_bootstrap,
        tmp_path / "state",
        fm_models_dir,
        KEEL_FM_ALERTMANAGER_URL=alertmanager_url,
        KEEL_FM_ALERTMANAGER_RESEND_S="2",  # re-sends would carry it too, were it not silenced
    )
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as base:
        silences = [
            # the surge: Alertmanager's matcher shape, equality and a regex
            [
                {"name": "series", "value": SERIES, "isRegex": False, "isEqual": True},
                {"name": "alertname", "value": "Negative.*", "isRegex": True},
            ],
            # anything else the stream may raise (tickers, volume): the older shape with op
            [{"name": "series", "op": "!=", "value": SERIES}],
        ]
        for matchers in silences:
            created = httpx.post(
                f"{base}/api/silences",
                headers={"X-API-Key": API_KEY},
                json={"matchers": matchers, "duration_s": 3600, "comment": "integration test"},
            )
            assert created.status_code == 201, created.text
        before = _received(alertmanager_url)
        produce_items(
            kafka_bootstrap,
            env["KEEL_FM_RAW_TOPIC"],
            surge_items(surge=True, run_id="am-silenced"),
            rate=LIVE_RATE,
        )
        (alert,) = wait_for(lambda: _surge_alert(base), 180, "the surge alert in Keel")
        assert alert["dispatch_state"] == "silenced"
        wait_for(
            lambda: httpx.get(f"{base}/api/alerts/{alert['key']}").json()["resolved"],
            180,
            "the surge to end (and the alert to resolve)",
        )
        time.sleep(6)  # several re-send rounds of the dispatcher
        assert _am_alerts(alertmanager_url, alert["key"]) == []
        stored = httpx.get(f"{base}/api/alerts").json()["alerts"]
        assert {a["dispatch_state"] for a in stored} == {"silenced"}
        # nothing of this run reached Alertmanager at all: no firing, no resolved
        assert _received(alertmanager_url) == before
