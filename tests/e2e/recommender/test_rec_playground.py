"""The playground page in headless Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_playground_shows_history_and_reasoned_recommendations(page: Any, rec_url: str) -> None:
    page.goto(rec_url + "/")
    page.wait_for_selector("#results li.result", timeout=30_000)
    assert page.locator("#user-select option").count() >= 30
    assert page.locator("#history li").count() >= 1
    first = page.locator("#results li.result").first
    assert first.locator(".title").text_content()
    assert "because you liked" in (first.locator(".because").text_content() or "")
    assert page.locator("#results li.result .bar").count() >= 1
    assert "bucket" in (page.locator("#bucket").text_content() or "")

    # another user: history and recommendations change
    before = page.locator("#history").text_content()
    options = page.locator("#user-select option")
    page.select_option("#user-select", options.nth(5).get_attribute("value"))
    page.wait_for_function(
        "prev => document.querySelector('#history').textContent !== prev", arg=before
    )
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.endsWith('recommendations')"
    )
    assert page.locator("#results li.result").count() >= 1


def test_playground_shows_markup_in_titles_as_text(page: Any, rec_url: str) -> None:
    from tests.integration.recommender.rec_support import API_KEY

    title = '<img src=x onerror="window.__pwned=1">Evil Course'
    with httpx.Client(base_url=rec_url, timeout=60) as http:
        item = {
            "id": "evil-1",
            "title": title,
            "text": "Learn Python tricks.",
            "categories": ["programming"],
        }
        resp = http.put("/catalogue/items", json={"items": [item]}, headers={"X-API-Key": API_KEY})
        assert resp.status_code == 200
        user = http.get("/users").json()["users"][0]["id"]
        posted = http.post(
            "/events",
            json={"events": [{"user_id": user, "item_id": "evil-1", "type": "click"}]},
            headers={"X-API-Key": API_KEY},
        )
        assert posted.status_code == 201, posted.text
    page.goto(rec_url + "/")
    page.wait_for_selector("#results li.result", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#history').textContent.includes('Evil Course')"
    )
    assert title in page.locator("#history").text_content()
    assert page.locator("#history img").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
