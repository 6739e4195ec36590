"""The web chat and the agent page in headless Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.customer_service.cs_support import API_KEY

pytestmark = pytest.mark.e2e


def _send(page: Any, text: str) -> None:
    before = page.locator(".msg.user").count()
    page.fill("#message", text)
    page.click("#send")
    page.locator(".msg.user").nth(before).wait_for()


def test_chat_citation_handoff_and_agent_queue(page: Any, cs_url: str) -> None:
    page.goto(cs_url + "/")
    page.locator(".msg.bot").first.wait_for()  # greeting

    attack = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned=2'> hi"
    _send(page, attack)
    assert page.locator(".msg.user .text").last.text_content() == attack
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#messages script, #messages img").count() == 0

    bots_before = page.locator(".msg.bot").count()
    _send(page, "What fees do you charge?")
    answer = page.locator(".msg.bot").nth(bots_before)
    answer.wait_for()
    link = answer.locator("a.citation").first
    link.wait_for()
    assert link.get_attribute("href").endswith("/kb/payments-fees-and-charges")
    assert link.text_content() == "Fees and charges"
    answer.locator(".thumb-up").click()
    page.locator(".thumb-up.chosen").wait_for()

    page.click("#human")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Waiting for a member')"
    )
    session_id = page.evaluate("window.sessionStorage.getItem('cs-session')")

    agent = page.context.new_page()
    agent.goto(cs_url + "/agent")
    agent.fill("#api-key", API_KEY)
    agent.fill("#agent-name", "Sam")
    agent.click("#connect")
    row = agent.locator(f"tr.queue-item[data-session-id='{session_id}']")
    row.wait_for()
    assert row.locator(".state").text_content() == "waiting_for_agent"
    assert row.locator(".last").text_content() == "What fees do you charge?"
    assert "talk to a human" in row.locator(".reason").text_content()
    row.click()
    assert agent.locator("#messages .msg.user .text").first.text_content() == attack
    # Why the bot handed over, with the turns that led there.
    agent.locator("#handoff-why").wait_for()
    assert "talk to a human" in agent.locator("#why-line").text_content()
    turns = agent.locator("#why-turns li").all_text_contents()
    assert any("What fees do you charge?" in turn for turn in turns), turns
    assert agent.locator("#messages script, #messages img").count() == 0
    agent.fill("#reply", "Hi, Sam from the support team here.")
    agent.click("#send-reply")
    # The customer's window polls and shows the agent's reply.
    page.locator(".msg.agent .text").filter(has_text="Sam from the support team").wait_for()

    # The message that ended in the hand-off waits in the review queue; the agent
    # corrects its intent there and it leaves the queue as labelled training data.
    history = httpx.get(f"{cs_url}/sessions/{session_id}").json()["messages"]
    asked = next(m["id"] for m in history if m["text"] == "What fees do you charge?")
    item = agent.locator(f"tr.review-item[data-message-id='{asked}']")
    item.wait_for()
    assert item.locator(".reason").text_content() == "hand-off"
    item.locator("select.correct-intent").select_option("fees_and_charges")
    item.locator("button.save-correction").click()
    item.wait_for(state="detached")
    assert int(agent.locator("#dataset-version").text_content()) >= 1
    corrections = httpx.get(f"{cs_url}/agent/corrections", headers={"X-API-Key": API_KEY}).json()[
        "corrections"
    ]
    assert {"message_id": asked, "intent": "fees_and_charges", "agent": "Sam"}.items() <= next(
        c for c in corrections if c["message_id"] == asked
    ).items()
