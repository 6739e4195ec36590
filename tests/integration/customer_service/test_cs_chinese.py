"""The support bot in Chinese and English at once (``KEEL_CS_LANGUAGES=en,zh``), over
real HTTP: a Chinese question is answered in Chinese from the Chinese help centre with a
citation (hybrid search: jieba BM25 + me5-small vectors), English is unchanged, and the
bot's own texts follow the conversation's language."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.customer_service.cs_support import API_KEY

# The first test may prepare the Chinese pipeline (me5-small) and start the bilingual
# server: minutes on a busy 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture()
def http(cs_bilingual_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cs_bilingual_url, timeout=60) as client:
        yield client


def test_a_chinese_question_gets_a_chinese_answer_citing_the_chinese_article(
    http: httpx.Client,
) -> None:
    health = http.get("/healthz").json()
    assert health["languages"]["served"] == ["en", "zh"]
    assert health["languages"]["zh"]["knowledge_base"]["documents"] >= 25

    # A retrieval intent: the answer is built from the knowledge base.
    reply = http.post("/chat", json={"message": "透支的年利率是多少？"}).json()
    assert reply["language"] == "zh" and reply["kind"] == "retrieval", reply
    assert reply["intent"] == "overdraft"
    assert reply["citations"][0]["doc_id"] == "zh-savings-overdrafts"
    assert reply["citations"][0]["url"] == "/kb/zh-savings-overdrafts"
    assert "18%" in reply["answer"] and "[1]" in reply["answer"]
    article = http.get("/kb/zh-savings-overdrafts/content").json()
    assert article["title"] == "透支"

    # The passages retrieval answers are built from: BM25 over jieba words finds the
    # article for a question sharing only words with it (取现, 手续费).
    hits = http.get(
        "/admin/search", params={"q": "境外取现手续费", "k": 3}, headers={"X-API-Key": API_KEY}
    ).json()
    assert "zh-payments-fees-and-charges" in [hit["doc_id"] for hit in hits]


def test_templates_and_english_answers_stay_in_their_language(http: httpx.Client) -> None:
    session = http.post("/sessions", json={"language": "zh"}).json()
    assert session["language"] == "zh" and session["languages"] == ["en", "zh"]
    assert "布兰博银行" in session["greeting"]
    sid = session["session_id"]
    zh = http.post("/chat", json={"session_id": sid, "message": "我的信用卡丢了，怎么办"}).json()
    assert zh["language"] == "zh" and zh["intent"] == "lost_or_stolen_card"
    assert zh["kind"] == "template" and "冻结您的信用卡" in zh["answer"]

    en = http.post("/chat", json={"message": "I lost my card"}).json()
    assert en["language"] == "en" and en["intent"] == "lost_or_stolen_card"
    assert "Freeze your" in en["answer"]
    english_session = http.post("/sessions").json()  # no body: the default language
    assert english_session["language"] == "en" and english_session["greeting"].startswith("Hi")


def test_handoff_speaks_the_conversations_language(http: httpx.Client) -> None:
    sid = http.post("/sessions", json={"language": "zh"}).json()["session_id"]
    http.post("/chat", json={"session_id": sid, "message": "你好"})
    history = http.post(f"/sessions/{sid}/handoff", json={"language": "zh"}).json()
    assert history["state"] == "waiting_for_agent"
    assert history["messages"][-1]["text"].startswith("正在为您转接人工客服")
    back = http.post(f"/agent/sessions/{sid}/hand-back", headers={"X-API-Key": API_KEY})
    assert back.status_code == 200 and back.json()["text"].startswith("您已回到智能助手")


def test_a_language_that_is_not_served_is_a_422_naming_the_field(http: httpx.Client) -> None:
    response = http.post("/chat", json={"message": "bonjour", "language": "fr"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "language"]
    response = http.post("/sessions", json={"language": "de"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "language"]
