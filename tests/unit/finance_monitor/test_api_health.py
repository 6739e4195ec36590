"""Readiness reports restarting stages as degraded; the event stream is capped."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from finance_monitor.api.stream import SubscriberSlots
from finance_monitor.config import Settings
from finance_monitor.main import create_app


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    settings = Settings(
        state_dir=tmp_path,
        api_key="test-admin-key-fm",
        run_workers=False,
        sse_max_subscribers=2,
        kafka_bootstrap_servers="broker.internal:9092",
    )
    return TestClient(create_app(settings))  # no `with`: models are not prepared


def test_a_stage_that_keeps_restarting_makes_readiness_degraded(client: TestClient) -> None:
    runtime = client.app.state.runtime
    runtime.state = "ready"
    assert client.get("/healthz").json()["status"] == "ok"
    for _ in range(3):
        runtime.supervisor.record_failure(
            "scorer", RecursionError("http://user:token@hooks.example.com/x")
        )
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["reasons"] == [
        "scorer restarted 3 times in the last 300 s (last error: RecursionError)"
    ]
    text = response.text
    assert "token" not in text and "http" not in text and "broker.internal" not in text


def test_start_up_failure_shows_the_error_class_only(client: TestClient) -> None:
    runtime = client.app.state.runtime
    runtime.state, runtime.error = "failed", "ConnectError"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"] == "ConnectError"


def test_event_streams_beyond_the_cap_get_503() -> None:
    slots = SubscriberSlots()
    assert slots.acquire(2) and slots.acquire(2)
    assert not slots.acquire(2)
    slots.release()
    assert slots.acquire(2)


def test_the_stream_endpoint_refuses_when_full(client: TestClient) -> None:
    slots = SubscriberSlots()
    slots.open = 2
    client.app.state.sse_slots = slots
    response = client.get("/api/stream")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert "limit 2" in response.json()["detail"]
