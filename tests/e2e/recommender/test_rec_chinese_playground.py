"""The playground's Chinese catalogue slice in headless Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_catalogue_switch_shows_chinese_users_and_titles(page: Any, rec_url: str) -> None:
    page.goto(rec_url + "/")
    page.wait_for_selector("#results li.result", timeout=30_000)
    page.select_option("#catalogue-select", "zh")
    # only the Chinese demo users remain, and the first one's history loads
    page.wait_for_function(
        "() => document.querySelectorAll('#user-select option').length === 4", timeout=30_000
    )
    page.wait_for_function(
        "() => document.querySelector('#history').textContent.includes('中文')", timeout=60_000
    )
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.endsWith('recommendations')",
        timeout=60_000,
    )
    names = page.locator("#user-select option").all_text_contents()
    assert all(HAN.search(name) for name in names), names
    history = page.locator("#history li").all_text_contents()
    assert history and all(HAN.search(title) for title in history), history
    badges = page.locator("#history .lang-badge")
    assert badges.count() == len(history)
    assert page.locator("#history [lang=zh]").count() == len(history)
    assert page.locator("#results li.result").count() >= 1

    # back to English: the Chinese users leave the list
    page.select_option("#catalogue-select", "en")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('#user-select option')]"
        ".some((o) => /[\\u4e00-\\u9fff]/.test(o.textContent))",
        timeout=30_000,
    )
    assert page.locator("#user-select option").count() >= 30
