"""Request and response bodies of the HTTP API.

Every free-text request field is a :data:`Text`: bounded in length, and refused with
a 422 naming the field when it holds a NUL or other control character or an unpaired
UTF-16 surrogate (JSON can spell ``"\\ud800"``; no database or file can store it).
Every number is bounded, so none overflows a database integer.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, Field

# The largest id a request may name: SQLite and PostgreSQL integers are signed 64-bit.
MAX_ID = 2**63 - 1
# Hard cap of a customer message; the configurable MAX_MESSAGE_CHARS is checked in /chat.
MAX_MESSAGE_CHARS = 100_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_text(value: str) -> str:
    """Refuse text no store can hold faithfully (used as a pydantic validator).

    Raises:
        ValueError: a control character other than tab / newline / carriage return, or
            an unpaired surrogate; the message gives its position.
    """
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ValueError(
            f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}"
        )
    bad = _SURROGATE.search(value)
    if bad is not None:
        raise ValueError(f"contains an unpaired UTF-16 surrogate at position {bad.start()}")
    return value


Text = Annotated[str, AfterValidator(check_text)]

# Conversation ids are hex (uuid4); anything else in the path is a 422, not a lookup.
SESSION_ID_PATTERN = r"^[0-9a-f]{8,64}$"
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="conversation id")]


def is_blank(text: str) -> bool:
    """Whether ``text`` has nothing visible: only whitespace and format characters
    (zero-width spaces, byte-order marks, direction marks)."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


LanguageCode = Literal["en", "zh"]


class StartSessionRequest(BaseModel):
    """Optional body of ``POST /sessions``: the language the chat page shows."""

    language: LanguageCode | None = Field(
        default=None, description="greeting language (one of the languages served)"
    )


class StartSessionResponse(BaseModel):
    session_id: str
    state: str
    greeting: str
    language: str = Field(default="en", description="the greeting's language")
    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="the languages served, the default first"
    )


class ChatRequest(BaseModel):
    """One customer message; without ``session_id`` a new conversation is started."""

    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN)
    message: Text = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="the customer's message (at most MAX_MESSAGE_CHARS characters)",
    )
    language: LanguageCode | None = Field(
        default=None,
        description="the language the chat page shows; used only when neither the message "
        "nor the conversation tells which language to answer in",
    )


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
    language: str = Field(default="en", description="the language of the answer (en, zh)")


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
    message_id: int = Field(ge=1, le=MAX_ID)
    rating: Literal["up", "down"]
    comment: Text | None = Field(default=None, max_length=2000)


class HandoffRequest(BaseModel):
    reason: str = Field(
        default="customer_button", min_length=1, max_length=64, pattern=r"^[a-z_]+$"
    )
    language: LanguageCode | None = Field(
        default=None, description="the chat page's language, for a conversation with no message"
    )


class AgentReplyRequest(BaseModel):
    agent: Text = Field(min_length=1, max_length=64)
    message: Text = Field(min_length=1, max_length=4000)


class HandoffTurn(BaseModel):
    """A customer turn that led to a hand-off (masked text)."""

    text: str
    intent: str | None
    confidence: float | None
    answer: str | None = Field(description="the bot's answer kind: fallback, clarify, handoff...")


class QueueItem(BaseModel):
    session_id: str
    state: str
    handoff_reason: str | None
    handoff_why: str | None = Field(description="why the bot handed over, in words")
    handoff_turns: list[HandoffTurn] = Field(
        description="the last customer turns before the hand-off, oldest first"
    )
    waiting_since: float | None
    agent_name: str | None
    last_customer_message: str | None


class DocumentIn(BaseModel):
    title: Text = Field(min_length=1, max_length=300)
    text: Text = Field(min_length=1, max_length=200_000)
    format: Literal["markdown", "html", "text"] = "markdown"
    url: Text | None = Field(default=None, max_length=2000)


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
