"""A Chinese chat in headless Chromium: the page opens in Chinese for a Chinese browser,
a Chinese question gets a Chinese answer with a cited Chinese article, and the page's
own texts follow the language the bot answers in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# The first test may prepare the Chinese pipeline (me5-small) and start the bilingual
# server: minutes on a busy 2-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

REPLY_TIMEOUT_MS = 90_000  # a busy 2-core CI machine


@pytest.fixture()
def zh_page(browser: Any) -> Iterator[Any]:
    """A page whose browser prefers Chinese (``navigator.language`` is zh-CN)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(REPLY_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _send(page: Any, text: str) -> Any:
    """Send ``text``; the bot's answer to it."""
    bots = page.locator(".msg.bot").count()
    page.fill("#message", text)
    page.click("#send")
    answer = page.locator(".msg.bot").nth(bots)
    answer.wait_for()
    return answer


def test_chinese_chat_with_a_cited_answer(zh_page: Any, cs_bilingual_url: str) -> None:
    page = zh_page
    page.goto(cs_bilingual_url + "/")
    greeting = page.locator(".msg.bot").first
    greeting.wait_for()
    assert "布兰博银行" in greeting.locator(".text").text_content()
    assert page.locator("#heading").text_content() == "布兰博银行帮助中心"
    assert page.locator("#send").text_content() == "发送"
    assert page.locator("#human").text_content() == "转人工"
    assert page.get_attribute("#message", "placeholder") == "请输入您的问题……"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"

    answer = _send(page, "透支的年利率是多少？")
    assert answer.locator(".who").text_content() == "智能助手"
    assert "18%" in answer.locator(".text").text_content()
    link = answer.locator("a.citation").first
    link.wait_for()
    assert link.get_attribute("href").endswith("/kb/zh-savings-overdrafts")
    assert link.text_content() == "透支"
    assert "有帮助" in answer.locator(".thumb-up").text_content()
    answer.locator(".thumb-up").click()
    page.locator(".thumb-up.chosen").wait_for()

    # The cited article opens on its page.
    article = page.context.new_page()
    article.goto(cs_bilingual_url + "/kb/zh-savings-overdrafts")
    article.get_by_text("年利率18%", exact=False).first.wait_for()
    article.close()

    # An English question: the bot answers in English and the page follows.
    english = _send(page, "I lost my card")
    assert "Freeze your" in english.locator(".text").text_content()
    page.wait_for_function("document.getElementById('send').textContent === 'Send'")
    assert page.locator("#heading").text_content() == "Bramble Bank help"
    # The switch in the header goes back to Chinese.
    page.click("#language")
    assert page.locator("#send").text_content() == "发送"
    page.click("#human")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('正在等待人工客服')"
    )
