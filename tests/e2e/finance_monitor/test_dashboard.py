"""The dashboard in headless Chromium shows the live charts and the alert after a surge,
and opens the alert into its drill-down: headlines, chart, acknowledge / silence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

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

        # open the alert: its headlines (the evidence, most negative first) and the chart
        item.click()
        panel = page.locator("#alert-detail")
        panel.wait_for(state="visible", timeout=30_000)
        assert page.url.endswith(f"#alert={alert['key']}")
        evidence = httpx.get(f"{base}/api/alerts/{alert['key']}").json()["evidence"]
        assert evidence, "the alert stores the messages behind it"
        headlines = page.locator("#detail-headlines li")
        headlines.first.wait_for(timeout=30_000)
        assert headlines.count() == len(evidence)
        assert headlines.nth(0).locator(".text").inner_text() == evidence[0]["text"]
        assert evidence[0]["id"] in headlines.nth(0).locator(".meta").inner_text()
        assert f"Negative sentiment surge on {SURGE_TOPIC}" in page.inner_text("#detail-summary")
        page.wait_for_function(
            "(() => { const c = document.getElementById('detail-chart');"
            " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
            ".some((v, i) => i % 4 === 3 && v > 0); })()",
            timeout=30_000,
        )
        # acknowledge: the page asks for the admin key once, keeps it in sessionStorage
        page.click("#detail-ack")
        page.locator("#key-form").wait_for(state="visible")
        page.fill("#admin-key", API_KEY)
        page.click("#key-form button")
        page.wait_for_function(
            "document.getElementById('detail-status').textContent.startsWith('Acknowledged')",
            timeout=30_000,
        )
        assert httpx.get(f"{base}/api/alerts/{alert['key']}").json()["status"] == "acknowledged"
        assert page.evaluate("window.sessionStorage.getItem('fm-admin-key')") == API_KEY
        # silence: no second prompt, a silence on the alert's series and rule
        page.click("#detail-silence")
        page.wait_for_function(
            "document.getElementById('detail-status').textContent.startsWith('Silenced')",
            timeout=30_000,
        )
        (silence,) = httpx.get(f"{base}/api/silences").json()["silences"]
        assert {(m["name"], m["op"], m["value"]) for m in silence["matchers"]} == {
            ("series", "=", f"topic:{SURGE_TOPIC}"),
            ("rule", "=", alert["rule_id"]),
        }
        page.click("#detail-close")
        panel.wait_for(state="hidden")
