"""Alertmanager formats and receiver: webhook v4 (schema-checked), v2 API alerts with
fingerprints, resolved notifications, re-sends, and silences keeping alerts from it."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from finance_monitor.alertmanager import am_alert, am_labels, fingerprint, rfc3339
from finance_monitor.dispatcher import AlertDispatcher
from finance_monitor.rules import Alert, Resolution
from finance_monitor.silencing import Matcher
from finance_monitor.storage import MonitorStore

SCHEMA = json.loads((Path(__file__).parent / "alertmanager_webhook_v4.schema.json").read_text())
HOOK = "http://hooks.example.com/keel"
AM = "http://am.example.com:9093"
EVIDENCE = [
    {
        "id": f"m{i}",
        "text": f"Headline {i}",
        "source": "wire",
        "sentiment": "negative",
        "probability": 0.9 - i / 100,
        "negative": 0.9 - i / 100,
        "event_time": 1000.0 + i,
    }
    for i in range(5)
]


def _alert(key: str, series: str = "topic:Oil", rule: str = "r") -> Alert:
    labels = {
        "rule": rule,
        "kind": "negative_surge",
        "series": series,
        "series_kind": series.split(":")[0],
        "severity": "critical",
    }
    return Alert(
        key, rule, "negative_surge", series, "critical", "tumbling", 0, 60, 0.6, 0.1, 0.3, 30,
        "surge", labels, evidence=list(EVIDENCE),
    )  # fmt: skip


class Capture:
    """A mock transport that records every JSON body by host."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.url.host}{request.url.path}"
        self.bodies.setdefault(key, []).append(json.loads(request.read()))
        return httpx.Response(200)


@pytest.fixture()
def store(database_url: str) -> Iterator[MonitorStore]:
    s = MonitorStore(database_url)
    yield s
    s.close()


def _dispatcher(store: MonitorStore, capture: Capture, **kw: Any) -> AlertDispatcher:
    return AlertDispatcher(
        store,
        None,
        "alerts",
        [HOOK],
        ["rule", "series"],
        group_wait_s=0,
        transport=httpx.MockTransport(capture),
        alertmanager_url=AM,
        public_url="http://dash.example.com",
        **kw,
    )


def test_fingerprint_is_alertmanagers() -> None:
    # Value computed by Alertmanager 0.25 for this label set (its /api/v2/alerts).
    labels = {
        "alertname": "NegativeSentimentSurge",
        "kind": "topic",
        "rule": "negative-surge-topic",
        "series": "topic:Earnings",
        "severity": "critical",
    }
    assert fingerprint(labels) == "8d5c5f67bb1907ee"
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset basis


def test_rfc3339_and_labels() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert dt.datetime.fromisoformat(rfc3339(1.5e9)).timestamp() == 1.5e9
    assert am_labels(_alert("k", "ticker:NWE").labels) == {
        "alertname": "NegativeSentimentSurge",
        "rule": "r",
        "series": "ticker:NWE",
        "kind": "ticker",
        "severity": "critical",
    }


def test_am_alert_fires_until_a_horizon_then_resolves() -> None:
    row = {**_alert("k").as_dict(), "created_at": 100.0, "resolved_at": None}
    firing = am_alert(row, "http://dash", now=200.0, firing_for_s=240)
    assert firing["startsAt"] == rfc3339(100.0)
    assert firing["endsAt"] == rfc3339(440.0)
    assert firing["generatorURL"] == "http://dash/api/alerts/k"
    assert firing["annotations"]["dashboard"] == "http://dash/#alert=k"
    assert firing["annotations"]["headlines"].splitlines() == [
        "Headline 0",
        "Headline 1",
        "Headline 2",
    ]
    resolved = am_alert({**row, "resolved_at": 300.0}, "http://dash", now=500.0, firing_for_s=240)
    assert resolved["endsAt"] == rfc3339(300.0)


def test_webhook_notifications_match_the_v4_schema_firing_then_resolved(
    store: MonitorStore,
) -> None:
    validator = jsonschema_rs.validator_for(SCHEMA)
    capture = Capture()
    dispatcher = _dispatcher(store, capture)
    store.commit_trend_batch("g", "t", {}, [], [_alert("a"), _alert("b", "topic:Gold")])
    dispatcher.deliver_once()
    store.commit_trend_batch("g", "t", {}, [], [], resolved=[Resolution("a", "r", "topic:Oil", 9)])
    dispatcher.deliver_once()
    hooks = capture.bodies["hooks.example.com/keel"]
    assert [p["status"] for p in hooks] == ["firing", "firing", "resolved"]
    for payload in hooks:
        errors = [e.message for e in validator.iter_errors(payload)]
        assert errors == [], errors
    first = hooks[0]
    assert first["groupLabels"] == {"rule": "r", "series": "topic:Oil"}
    assert first["externalURL"] == "http://dash.example.com"
    (alert,) = first["alerts"]
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    resolved = hooks[2]["alerts"][0]
    assert resolved["annotations"]["alert_key"] == "a"
    assert resolved["endsAt"] > resolved["startsAt"]
    assert store.get_alert("a")["resolved"] is True
    assert store.get_alert("b")["resolved"] is False


def test_alertmanager_receiver_posts_current_state_and_resends(store: MonitorStore) -> None:
    capture = Capture()
    dispatcher = _dispatcher(store, capture, resend_s=60)
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    dispatcher.deliver_once()
    (posted,) = capture.bodies["am.example.com/api/v2/alerts"]
    assert posted[0]["labels"]["series"] == "topic:Oil"
    ends = dt.datetime.fromisoformat(posted[0]["endsAt"]).timestamp()
    assert ends > time.time() + 200  # firing: 4 x the resend interval ahead
    assert dispatcher.resend_firing() == 1
    store.commit_trend_batch("g", "t", {}, [], [], resolved=[Resolution("a", "r", "topic:Oil", 9)])
    assert dispatcher.resend_firing() == 0  # resolved alerts are not re-sent as firing
    dispatcher.deliver_once()
    last = capture.bodies["am.example.com/api/v2/alerts"][-1]
    assert dt.datetime.fromisoformat(last[0]["endsAt"]).timestamp() <= time.time()
    assert store.get_alert("a")["dispatch_state"] == "sent"


def test_a_keel_silence_keeps_the_alert_from_every_receiver(store: MonitorStore) -> None:
    capture = Capture()
    dispatcher = _dispatcher(store, capture)
    now = time.time()
    store.add_silence([Matcher.parse("series", "=~", "topic:O.*")], now - 1, now + 600, "t", "")
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    dispatcher.deliver_once()
    store.commit_trend_batch("g", "t", {}, [], [], resolved=[Resolution("a", "r", "topic:Oil", 9)])
    dispatcher.deliver_once()
    assert dispatcher.resend_firing() == 0
    assert capture.bodies == {}
    assert store.get_alert("a")["dispatch_state"] == "silenced"


def test_alerts_store_their_evidence_most_negative_first(store: MonitorStore) -> None:
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    evidence = store.get_alert("a")["evidence"]
    assert [e["id"] for e in evidence] == ["m0", "m1", "m2", "m3", "m4"]
    assert set(evidence[0]) == {
        "id", "text", "source", "sentiment", "probability", "negative", "event_time",
    }  # fmt: skip
    # a replayed alert (same key) neither duplicates nor replaces its evidence
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    assert len(store.get_alert("a")["evidence"]) == 5


def test_stale_firing_alerts_are_resolved(store: MonitorStore) -> None:
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    assert store.resolve_stale_alerts(time.time() - 60) == 0
    assert store.resolve_stale_alerts(time.time() + 1) == 1
    assert store.get_alert("a")["resolved"] is True


def test_alertmanager_settings_are_validated() -> None:
    from finance_monitor.config import Settings

    settings = Settings(
        api_key="k" * 24, alertmanager_url="http://am:9093/", public_url="https://keel/"
    )
    assert settings.alertmanager_url == "http://am:9093"
    assert settings.dashboard_url == "https://keel"
    assert Settings(api_key="k" * 24, port=9000).dashboard_url == "http://127.0.0.1:9000"
    with pytest.raises(ValueError, match="alertmanager_url"):
        Settings(api_key="k" * 24, alertmanager_url="am:9093")
