"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class StartSessionResponse(BaseModel):
    session_id: str
    state: str
    greeting: str


class ChatRequest(BaseModel):
    """One customer message; without ``session_id`` a new conversation is started."""

    session_id: str | None = Field(
        default=None, min_length=8, max_length=64, pattern=r"^[0-9a-f]+$"
    )
    message: str = Field(min_length=1, description="the customer's message (length-limited)")


class Citation(BaseModel):
    number: int
    doc_id: str
    title: str
    url: str
    passage_id: str
    start: int
    end: int
    snippet: str


class ClarifyOption(BaseModel):
    intent: str
    title: str


class ChatResponse(BaseModel):
    session_id: str
    state: str
    kind: str = Field(description="template | retrieval | clarify | fallback | handoff | silent")
    answer: str | None = Field(description="None while a human agent has the conversation")
    intent: str | None
    confidence: float | None
    citations: list[Citation] = []
    options: list[ClarifyOption] = []
    resolved_query: str | None = None
    message_id: int | None = None
    user_message_id: int | None = None
    generated: bool = Field(
        default=False,
        description="true when a retrieval answer is SmolLM2's text that passed the grounding "
        "check; false for extractive answers and every other kind",
    )
    grounding_failure: str | None = Field(
        default=None,
        description="why a generated answer was not shown (the extractive one was)",
    )


class MessageOut(BaseModel):
    id: int
    role: str
    text: str
    kind: str | None
    intent: str | None
    confidence: float | None
    citations: list[dict[str, Any]]
    rating: int | None
    created_at: float


class SessionOut(BaseModel):
    session_id: str
    state: str
    created_at: float
    updated_at: float
    handoff_reason: str | None
    agent_name: str | None
    messages: list[MessageOut]


class FeedbackRequest(BaseModel):
    message_id: int = Field(ge=1)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)


class HandoffRequest(BaseModel):
    reason: str = Field(
        default="customer_button", min_length=1, max_length=64, pattern=r"^[a-z_]+$"
    )


class AgentReplyRequest(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=4000)


class QueueItem(BaseModel):
    session_id: str
    state: str
    handoff_reason: str | None
    waiting_since: float | None
    agent_name: str | None
    last_customer_message: str | None


class DocumentIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=200_000)
    format: Literal["markdown", "html", "text"] = "markdown"
    url: str | None = Field(default=None, max_length=2000)


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    url: str
    source: str
    format: str


class DocumentStatus(BaseModel):
    doc_id: str
    status: str
    passages: int
