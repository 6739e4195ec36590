"""The scorer's per-record shortcuts give exactly what the plain versions give."""

from __future__ import annotations

import dataclasses
import json

import pytest

from finance_monitor.messages import ScoredRecord
from finance_monitor.scorer_worker import TickerCache
from finance_monitor.tickers import TickerExtractor


def _record(**overrides: object) -> ScoredRecord:
    fields: dict[str, object] = {
        "id": "m-1",
        "series": "ticker:NWE",
        "event_time": 1767605400.25,
        "published_at": "2026-01-05T09:30:00.250000+00:00",
        "source": "wire",
        "title": 'Résultats: 贵州茅台 "beats" \\ estimates',
        "text": "Profit up 12%\nnext line\ttab \u2028 sep",
        "topic": "Earnings",
        "topic_confidence": 0.9123,
        "sentiment": "positive",
        "sentiment_scores": {"negative": 0.0501, "neutral": 0.1, "positive": 0.8499},
        "tickers": ["NWE", "600519.SH"],
        "ingest_ts_ms": 1767605400123,
        "scored_ts_ms": 1767605400456,
        "raw_partition": 3,
        "raw_offset": 12345,
        "extra": {"worker": "host-1-2"},
        "lang": "zh",
    }
    fields.update(overrides)
    return ScoredRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [{}, {"title": None, "extra": {}, "tickers": []}, {"event_time": 1e-7, "lang": "en"}],
)
def test_record_bytes_are_those_of_the_asdict_encoding(overrides: dict[str, object]) -> None:
    record = _record(**overrides)
    plain = json.dumps(dataclasses.asdict(record), separators=(",", ":"), ensure_ascii=False)
    assert record.to_json_bytes() == plain.encode()
    assert ScoredRecord.from_json_bytes(record.to_json_bytes()) == record


def test_a_lone_surrogate_still_fails_to_encode() -> None:
    # The scorer dead-letters such a message ("scored record: UnicodeEncodeError").
    with pytest.raises(UnicodeEncodeError):
        _record(text="bad \udc80 text").to_json_bytes()


def test_ticker_cache_answers_like_the_extractor_with_fresh_lists() -> None:
    extractor = TickerExtractor({"Northwind Energy": "NWE", "贵州茅台": "600519.SH"})
    cache = TickerCache(extractor, capacity=2)
    cases = [
        ("Northwind Energy beats $ACME", []),
        ("贵州茅台 600519.SH 涨停", ["nwe"]),
        ("Northwind Energy beats $ACME", ["ZZZ"]),  # same text, other declared tickers
        ("nothing here", []),
    ]
    for text, declared in cases * 2:
        first = cache.extract(text, declared)
        assert first == extractor.extract(text, declared)
        first.append("CHANGED")  # a caller's change must not reach the next answer
        assert cache.extract(text, declared) == extractor.extract(text, declared)
    assert len(cache._items) == 2
    long_text = "Northwind Energy " + "x" * TickerCache.max_text_chars
    assert cache.extract(long_text, []) == ["NWE"]
    assert all(key[0] != long_text for key in cache._items)  # long texts are not kept
    uncached = TickerCache(extractor, capacity=0)
    assert uncached.extract(*cases[1]) == extractor.extract(*cases[1])
    with pytest.raises(ValueError, match="capacity"):
        TickerCache(extractor, capacity=-1)
