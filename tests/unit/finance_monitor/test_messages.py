"""Input contract: valid messages parse, every kind of bad input gets a reason naming the field."""

from __future__ import annotations

import json

import pytest

from finance_monitor.errors import InvalidMessageError
from finance_monitor.messages import ScoredRecord, parse_raw_message


def _raw(**overrides: object) -> bytes:
    payload: dict[str, object] = {
        "id": "m-1",
        "published_at": "2026-01-05T09:30:00Z",
        "source": "wire",
        "text": "Northwind Energy beats estimates",
    }
    payload.update(overrides)
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


def test_valid_message_parses_with_event_time_and_optional_fields() -> None:
    msg = parse_raw_message(_raw(title="Results", tickers=["NWE"], lang="en"), max_text_chars=100)
    assert msg.id == "m-1"
    assert msg.event_time == 1767605400.0
    assert msg.tickers == ["NWE"]
    assert msg.scoring_text == "Results. Northwind Energy beats estimates"


def test_naive_timestamp_is_taken_as_utc() -> None:
    msg = parse_raw_message(_raw(published_at="2026-01-05T09:30:00"), max_text_chars=100)
    assert msg.event_time == 1767605400.0


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (None, "tombstone"),
        (_raw(text=...), "text: required field is missing"),
        (_raw(id=...), "id: required field is missing"),
        (_raw(text=42), "text: Input should be a valid string"),
        (_raw(published_at="yesterday"), "published_at:"),
        (_raw(tickers="NWE"), "tickers:"),
        (_raw(text="   "), "text: Value error, must not be empty"),
        (_raw(text="x" * 101), "text: 101 characters, longer than the limit of 100"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(value: bytes | None, reason_part: str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        parse_raw_message(value, max_text_chars=100)
    assert reason_part in info.value.reason


def test_scored_record_round_trips_through_json() -> None:
    record = ScoredRecord(
        id="m-1",
        series="topic:Earnings",
        event_time=1.5,
        published_at="2026-01-05T09:30:00+00:00",
        source="wire",
        title=None,
        text="Profit up",
        topic="Earnings",
        topic_confidence=0.9,
        sentiment="positive",
        sentiment_scores={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        tickers=["NWE"],
        ingest_ts_ms=10,
        scored_ts_ms=20,
    )
    assert ScoredRecord.from_json_bytes(record.to_json_bytes()) == record
    with pytest.raises(InvalidMessageError):
        ScoredRecord.from_json_bytes(b'{"id": 1}')
