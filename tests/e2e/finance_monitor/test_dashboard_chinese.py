"""A Chinese headline in headless Chromium: scored by the Chinese heads (through the real
broker), counted in its series' windows and on the dashboard, shown with its language,
its A-share ticker and the company's Chinese name."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from finance_monitor.chinese import prepare_chinese_models
from finance_monitor.model_prep import PrepConfig
from finance_monitor.replay import demo_stream
from keel_service.servers import start_app_server
from tests.integration.finance_monitor.fm_support import (
    WINDOW_S,
    fm_env,
    produce_items,
    read_topic,
    wait_for,
)

# The fixture prepares the Chinese heads (and, run alone, the English ones): more than
# the default per-test limit on a loaded 2-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PER_WINDOW = 50
WINDOWS = 4
RATE = 60.0  # messages/s: 12 event seconds per wall second, like the surge tests
PROBE = "澜汀银行(689102.SH)宣布特别分红，股东受益"


@pytest.fixture(scope="module")
def zh_models_dir(fm_models_dir: Path) -> Path:
    """The session's English models plus the Chinese heads (prepared once, cached there)."""
    prepare_chinese_models(
        PrepConfig(models_dir=fm_models_dir, show_progress=False), progress=lambda _m: None
    )
    return fm_models_dir


def test_a_chinese_headline_is_scored_and_counted_on_the_dashboard(
    kafka_bootstrap: str, zh_models_dir: Path, tmp_path: Path, page: Any
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", zh_models_dir, KEEL_FM_CHINESE="true")
    start = (time.time() // WINDOW_S) * WINDOW_S
    items = list(
        demo_stream(
            start=start,
            spacing_s=WINDOW_S / PER_WINDOW,
            count=WINDOWS * PER_WINDOW,
            topics=["Dividend", "Earnings"],
            chinese_share=0.5,
            run_id="zh-e2e",
        )
    )
    # The probe: a Chinese headline whose ticker is in the message text only.
    items[5].message.update(text=PROBE, tickers=[], lang="zh")
    langs = Counter(i.message["lang"] for i in items)
    assert langs["zh"] > 20 and langs["en"] > 20
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=600) as base:
        page.goto(base + "/")
        produce_items(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items, rate=RATE)

        # every message scored, in its language (the scorer's own count, on the dashboard)
        feed = wait_for(
            lambda: (
                (d := httpx.get(f"{base}/api/headlines").json())["counts"]
                == {"en": langs["en"], "zh": langs["zh"]}
                and d
            ),
            180,
            "every message counted by language",
        )
        assert feed["available"] and feed["chinese_heads"]
        counts = page.locator("#lang-counts")
        page.wait_for_function(
            f"document.getElementById('lang-counts').dataset.zh === '{langs['zh']}'",
            timeout=30_000,
        )
        assert f"中文 {langs['zh']}" in counts.inner_text()

        # the scored records on the real scored topic carry the language and the A-share code
        scored = read_topic(
            kafka_bootstrap,
            env["KEEL_FM_SCORED_TOPIC"],
            lambda rs: any(json.loads(r.value)["id"] == "zh-e2e-5" for r in rs),
            timeout_s=60,
        )
        probe = [d for r in scored if (d := json.loads(r.value))["id"] == "zh-e2e-5"]
        assert {d["series"] for d in probe} == {f"topic:{probe[0]['topic']}", "ticker:689102.SH"}
        assert {d["lang"] for d in probe} == {"zh"}
        assert probe[0]["tickers"] == ["689102.SH"]
        assert probe[0]["text"] == PROBE
        assert probe[0]["sentiment"] in ("negative", "neutral", "positive")

        # counted in the ticker's windows (only Chinese headlines name this company): the
        # closed windows hold some of its messages and never more than were sent in them
        # (a record the watermark had passed would be dropped as late, never counted twice)
        windows = wait_for(
            lambda: httpx.get(f"{base}/api/trends/ticker/689102.SH").json()["points"],
            120,
            "a closed window of ticker:689102.SH",
        )
        sent: Counter[float] = Counter()
        for item in items:
            message = item.message
            if "689102.SH" in message["tickers"] or "澜汀银行" in message["text"]:
                event = dt.datetime.fromisoformat(message["published_at"]).timestamp()
                sent[event // WINDOW_S * WINDOW_S] += 1
        assert sum(w["count"] for w in windows) > 0
        for w in windows:
            assert 0 < w["count"] <= sent[w["start"]], (w, sent)

        # the dashboard shows the Chinese headline with its language and company name
        row = page.locator("#feed li", has_text=PROBE)
        row.wait_for(timeout=30_000)
        assert row.get_attribute("data-lang") == "zh"
        assert row.locator(".lang").inner_text() == "中文"
        assert row.locator(".text").get_attribute("lang") == "zh-CN"
        assert "689102.SH 澜汀银行" in row.locator(".meta").inner_text()
        assert page.locator('#feed li[data-lang="en"]').count() > 0  # both languages listed

        # the score form answers in the page, in Chinese
        page.fill("#score-text", "星衡半导体股价跌停，市值蒸发30亿元")
        page.click("#score-form button")
        page.wait_for_function(
            "document.getElementById('score-result').textContent.startsWith('中文')",
            timeout=60_000,
        )
        assert "004101.SZ" in page.inner_text("#score-result")
