"""The dashboard in headless Chromium shows the live charts and the alert after a surge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.finance_monitor.fm_support import (
    LIVE_RATE,
    SURGE_TOPIC,
    fm_env,
    produce_items,
    surge_items,
    wait_for,
)
from tests.support.servers import start_app_server

pytestmark = pytest.mark.e2e


def test_dashboard_shows_the_surge_alert(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path, page: Any
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir)
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as base:
        page.goto(base + "/")
        assert page.title() == "Finance sentiment monitor"
        items = surge_items(surge=True, run_id="e2e")
        produce_items(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items, rate=LIVE_RATE)
        (alert,) = wait_for(
            lambda: httpx.get(
                f"{base}/api/alerts", params={"series": f"topic:{SURGE_TOPIC}"}
            ).json()["alerts"],
            240,
            "the surge alert",
        )
        item = page.locator(f'#alerts li[data-key="{alert["key"]}"]')
        item.wait_for(timeout=30_000)
        assert f"Negative sentiment surge on {SURGE_TOPIC}" in item.inner_text()
        chart = page.locator(f'.chart[data-series="topic:{SURGE_TOPIC}"]')
        chart.wait_for(timeout=30_000)
        assert "alerting" in (chart.get_attribute("class") or "")
        assert page.locator("#conn").inner_text() == "live"
        # the score form answers through the API and shows the verdict as text
        page.fill("#score-text", "Northwind Energy misses earnings estimates and cuts its outlook")
        page.click("#score-form button")
        page.wait_for_function(
            "document.getElementById('score-result').textContent.includes('negative')",
            timeout=30_000,
        )
