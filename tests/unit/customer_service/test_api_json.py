"""api.chat.json_response sends the same JSON as FastAPI's response_model serialisation."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from customer_service.api.chat import json_response
from customer_service.api.schemas import ChatResponse

ANSWERS = [
    ChatResponse(
        session_id="ab" * 16,
        state="bot",
        kind="retrieval",
        answer='Cards arrive in 5–7 days « express » 中文 "quoted" \\ \n',
        intent="card_arrival",
        confidence=0.8123456789,
        citations=[  # type: ignore[list-item]
            {
                "number": 1,
                "doc_id": "cards",
                "title": "Cards",
                "url": "https://example.com/cards",
                "passage_id": "cards#0",
                "start": 0,
                "end": 120,
                "snippet": "Your card [CARD] ships…",
            }
        ],
        options=[{"intent": "a", "title": "A"}],  # type: ignore[list-item]
        resolved_query="where is it",
        message_id=2**62,
        user_message_id=7,
        generated=True,
        grounding_failure=None,
        language="zh",
    ),
    ChatResponse(
        session_id="cd" * 16,
        state="waiting_for_agent",
        kind="silent",
        answer=None,
        intent=None,
        confidence=None,
    ),
]


def test_json_response_matches_the_response_model_body() -> None:
    app = FastAPI()

    @app.get("/model/{index}", response_model=ChatResponse)
    def as_model(index: int) -> ChatResponse:
        return ANSWERS[index]

    @app.get("/direct/{index}", response_model=ChatResponse)
    def direct(index: int) -> Response:
        return json_response(ANSWERS[index])

    with TestClient(app) as client:
        for index in range(len(ANSWERS)):
            expected = client.get(f"/model/{index}")
            got = client.get(f"/direct/{index}")
            assert got.status_code == expected.status_code == 200
            assert got.content == expected.content
            assert got.headers["content-type"] == expected.headers["content-type"]
            assert got.headers["content-length"] == expected.headers["content-length"]
