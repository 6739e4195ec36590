"""The raw-message input contract and the enriched (scored) record.

Raw messages are JSON objects on the raw topic::

    {"id": "n-1", "published_at": "2026-01-05T09:30:00Z", "source": "wire",
     "text": "...", "title": "...", "tickers": ["ACME"], "lang": "en"}

``parse_raw_message`` turns the bytes into a ``RawMessage`` or raises
``InvalidMessageError`` whose reason names the field; the scorer sends such messages
to the dead-letter topic with that reason and the original bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finance_monitor.errors import InvalidMessageError

MAX_ID_CHARS = 200
MAX_TICKERS = 20


class RawMessage(BaseModel):
    """A validated raw message. Strict types: ``"text": 5`` is an error, not ``"5"``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    published_at: dt.datetime
    source: str = Field(min_length=1, max_length=200)
    text: str
    title: str | None = Field(default=None, max_length=1000)
    tickers: list[str] = Field(default_factory=list, max_length=MAX_TICKERS)
    lang: str | None = Field(default=None, max_length=16)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("published_at")
    @classmethod
    def _assume_utc(cls, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    @property
    def event_time(self) -> float:
        """Publication time as Unix seconds (the event time used by the windows)."""
        return self.published_at.timestamp()

    @property
    def scoring_text(self) -> str:
        """Title and body joined: what the models read."""
        return f"{self.title}. {self.text}" if self.title else self.text


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or "message"
        msg = item["msg"]
        if item["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_raw_message(value: bytes | None, *, max_text_chars: int) -> RawMessage:
    """Decode and validate one raw Kafka record value.

    Args:
        value: the record's bytes (``None`` for a tombstone).
        max_text_chars: longest accepted ``text``; longer texts are rejected, not cut.

    Returns:
        The validated message.

    Raises:
        InvalidMessageError: with a reason naming the field (or the decoding problem).
    """
    if value is None:
        raise InvalidMessageError("message: empty record value (tombstone)")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessageError(f"message: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise InvalidMessageError(
            f"message: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidMessageError(f"message: expected a JSON object, got {type(payload).__name__}")
    text = payload.get("text")
    if isinstance(text, str) and len(text) > max_text_chars:
        raise InvalidMessageError(
            f"text: {len(text)} characters, longer than the limit of {max_text_chars}"
        )
    try:
        # JSON-mode validation so ISO strings parse as datetimes even in strict mode.
        return RawMessage.model_validate_json(decoded)
    except ValidationError as exc:
        raise InvalidMessageError(_describe(exc)) from exc


@dataclass(frozen=True)
class ScoredRecord:
    """One message enriched with topic, sentiment and tickers, for one trend series.

    A message fans out to one record per series it belongs to (its topic and each
    ticker), so the scored topic can be keyed by series and one trend partition sees
    every record of a series.
    """

    id: str
    series: str
    event_time: float
    published_at: str
    source: str
    title: str | None
    text: str
    topic: str
    topic_confidence: float
    sentiment: str
    sentiment_scores: dict[str, float]
    tickers: list[str]
    ingest_ts_ms: int
    scored_ts_ms: int
    raw_partition: int = -1
    raw_offset: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_bytes(self) -> bytes:
        """The record as compact UTF-8 JSON."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json_bytes(cls, value: bytes) -> ScoredRecord:
        """Parse a record written by ``to_json_bytes``.

        Raises:
            InvalidMessageError: the bytes are not a scored record.
        """
        try:
            payload = json.loads(value)
            return cls(**payload)
        except (ValueError, TypeError) as exc:
            raise InvalidMessageError(f"scored record: {exc}") from exc


def topic_series(topic: str) -> str:
    """Series key of a topic, e.g. ``topic:Earnings``."""
    return f"topic:{topic}"


def ticker_series(ticker: str) -> str:
    """Series key of a ticker, e.g. ``ticker:ACME``."""
    return f"ticker:{ticker}"


def series_kind(series: str) -> str:
    """``topic`` or ``ticker``: the part of a series key before the colon."""
    return series.split(":", 1)[0]
