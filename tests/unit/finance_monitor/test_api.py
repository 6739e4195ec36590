"""The HTTP layer over a real store, SQLite and PostgreSQL (models not loaded: the lifespan
is not started)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from finance_monitor.config import Settings
from finance_monitor.main import create_app
from finance_monitor.rules import Alert

KEY = {"X-API-Key": "test-admin-key-fm"}


@pytest.fixture()
def client(tmp_path: Path, database_url: str) -> TestClient:
    settings = Settings(
        state_dir=tmp_path,
        database_url=database_url,
        api_key="test-admin-key-fm",
        run_workers=False,
    )
    return TestClient(create_app(settings))  # no `with`: models are not prepared


def test_healthz_is_503_until_ready_and_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "starting"
    assert "finance_messages_scored_total" in client.get("/metrics").text


def test_rules_crud_needs_the_key_and_validates_fields(client: TestClient) -> None:
    assert "negative-surge-topic" in {r["id"] for r in client.get("/api/rules").json()["rules"]}
    rule = {"id": "oil-spike", "kind": "volume_spike", "factor": 4}
    assert client.post("/api/rules", json=rule).status_code == 401
    assert client.post("/api/rules", json=rule, headers=KEY).status_code == 201
    assert client.get("/api/rules/oil-spike").json()["factor"] == 4
    bad = client.put("/api/rules/oil-spike", json={"kind": "volume_spike", "alpha": 2}, headers=KEY)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "alpha"]
    assert client.delete("/api/rules/oil-spike", headers=KEY).status_code == 204
    assert client.get("/api/rules/oil-spike").status_code == 404


def test_silences_and_alert_acknowledgement(client: TestClient) -> None:
    body = {"matchers": [{"name": "series", "value": "topic:Oil"}], "duration_s": 60}
    created = client.post("/api/silences", json=body, headers=KEY)
    assert created.status_code == 201
    bad = client.post(
        "/api/silences", json={"matchers": [{"name": "colour", "value": "x"}]}, headers=KEY
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "matchers"]
    assert len(client.get("/api/silences", params={"active": True}).json()["silences"]) == 1
    store = client.app.state.runtime.store
    labels = {
        "rule": "r",
        "kind": "negative_surge",
        "series": "topic:Gold",
        "series_kind": "topic",
        "severity": "warning",
    }
    alert = Alert(
        "k1",
        "r",
        "negative_surge",
        "topic:Gold",
        "warning",
        "tumbling",
        0,
        60,
        0.5,
        0.1,
        0.3,
        20,
        "s",
        labels,
    )
    store.commit_trend_batch("g", "t", {}, [], [alert])
    assert [a["key"] for a in client.get("/api/alerts").json()["alerts"]] == ["k1"]
    assert client.post("/api/alerts/k1/ack", headers=KEY).json()["status"] == "acknowledged"
    assert client.post("/api/alerts/none/ack", headers=KEY).status_code == 404
    assert client.delete(f"/api/silences/{created.json()['id']}", headers=KEY).status_code == 204
    time.sleep(0.01)
    assert client.get("/api/silences", params={"active": True}).json()["silences"] == []


def test_bad_query_and_score_input_get_422(client: TestClient) -> None:
    assert client.get("/api/alerts", params={"limit": 0}).status_code == 422
    assert client.get("/api/trends/sector/Oil").status_code == 422
    assert client.post("/api/score", json={"texts": []}).status_code == 422
    assert client.post("/api/score", json={"texts": ["   "]}).status_code == 422
    assert client.post("/api/score", json={"texts": ["ok"]}).status_code == 503  # models not loaded
    page = client.get("/")
    assert page.status_code == 200 and "Finance sentiment monitor" in page.text


def test_database_url_must_be_sqlite_or_postgresql(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sqlite:///PATH or postgresql://") as error:
        Settings(state_dir=tmp_path, database_url="mysql://root:hunter2@db/fm")
    assert "hunter2" not in str(error.value)  # the password never reaches the message
    settings = Settings(state_dir=tmp_path, database_url="postgresql://fm@db:5432/fm")
    assert settings.store_url == "postgresql://fm@db:5432/fm"
    assert Settings(state_dir=tmp_path).store_url.endswith("/finance_monitor.db")


def test_silences_take_alertmanager_matchers_and_name_bad_fields(client: TestClient) -> None:
    body = {
        "matchers": [
            {"name": "series", "value": "topic:.*", "isRegex": True, "isEqual": False},
            {"name": "alertname", "op": "!=", "value": "VolumeSpike"},
            {"name": "kind", "value": "negative_surge", "regex": False},  # older shape
        ],
        "ends_at": time.time() + 600,
    }
    created = client.post("/api/silences", json=body, headers=KEY)
    assert created.status_code == 201, created.text
    matchers = created.json()["matchers"]
    assert [(m["name"], m["op"]) for m in matchers] == [
        ("series", "!~"),
        ("alertname", "!="),
        ("rule_kind", "="),
    ]
    assert matchers[0]["isRegex"] is True and matchers[0]["isEqual"] is False
    for bad, field in (
        ({"name": "series", "op": "==", "value": "x"}, "matchers"),
        ({"name": "series", "value": "(", "isRegex": True}, "matchers"),
    ):
        answer = client.post("/api/silences", json={"matchers": [bad]}, headers=KEY)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][:2] == ["body", field]
    assert client.post("/api/silences", json=body).status_code == 401


def test_an_alert_answers_with_its_evidence(client: TestClient) -> None:
    labels = {"rule": "r", "kind": "negative_surge", "series": "topic:Gold",
              "series_kind": "topic", "severity": "warning"}  # fmt: skip
    evidence = [
        {"id": "m1", "text": "Gold miner halts output", "source": "wire",
         "sentiment": "negative", "probability": 0.97, "negative": 0.97, "event_time": 5.0},
    ]  # fmt: skip
    alert = Alert("k2", "r", "negative_surge", "topic:Gold", "warning", "tumbling", 0, 60,
                  0.5, 0.1, 0.3, 20, "s", labels, evidence=evidence)  # fmt: skip
    client.app.state.runtime.store.commit_trend_batch("g", "t", {}, [], [alert])
    got = client.get("/api/alerts/k2").json()
    assert got["evidence"] == evidence
    assert got["resolved"] is False and got["resolved_at"] is None
    assert "evidence" not in client.get("/api/alerts").json()["alerts"][0]
