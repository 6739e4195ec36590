"""The demo turns the support bot's live upgrade on (unless the environment says off) and
its landing page passes each app's model block (tier, score, upgrade) through."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from keel_demo.landing import _health
from keel_demo.orchestrator import Demo, DemoOptions
from keel_demo.services import APPS

CS = next(app for app in APPS if app.name == "customer_service")


def test_the_demo_turns_the_upgrade_on_and_a_setting_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KEEL_CS_UPGRADE", raising=False)
    assert Demo(DemoOptions())._env(CS)["KEEL_CS_UPGRADE"] == "on"
    monkeypatch.setenv("KEEL_CS_UPGRADE", "off")
    assert Demo(DemoOptions())._env(CS)["KEEL_CS_UPGRADE"] == "off"
    fm = next(app for app in APPS if app.name == "finance_monitor")
    monkeypatch.delenv("KEEL_FM_UPGRADE", raising=False)
    assert Demo(DemoOptions())._env(fm)["KEEL_FM_UPGRADE"] == "on"
    rec = next(app for app in APPS if app.name == "recommender")
    monkeypatch.delenv("KEEL_REC_UPGRADE", raising=False)
    assert Demo(DemoOptions())._env(rec)["KEEL_REC_UPGRADE"] == "on"
    monkeypatch.setenv("KEEL_REC_UPGRADE", "off")
    assert Demo(DemoOptions())._env(rec)["KEEL_REC_UPGRADE"] == "off"


def _health_of(status: int, body: object) -> dict:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/healthz"
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    async def run() -> dict:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await _health(client, "http://app")

    return asyncio.run(run())


def test_the_landing_page_gets_each_apps_model_block() -> None:
    model = {
        "name": "intent",
        "tier": "fast",
        "validation_score": 0.96,
        "upgrade": {"state": "training", "fraction": 0.4, "eta_s": 120.0},
    }
    health = _health_of(200, {"status": "ok", "model": model})
    assert health == {"ok": True, "detail": "healthy", "model": model}
    assert _health_of(200, {"status": "ok"}) == {"ok": True, "detail": "healthy"}
    assert _health_of(503, "not json") == {"ok": False, "detail": "HTTP 503"}
