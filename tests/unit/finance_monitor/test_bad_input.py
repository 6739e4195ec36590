"""Bad input never stops a stage: strict parsing, skew bounds, watermark clamp, DLQ envelope."""

from __future__ import annotations

import hashlib
import json
import math
import threading

import pytest

from finance_monitor.dlq import dead_letter
from finance_monitor.errors import InvalidMessageError
from finance_monitor.messages import (
    MAX_JSON_DEPTH,
    ScoredRecord,
    check_event_time,
    json_depth,
    parse_raw_message,
)
from finance_monitor.rules import RuleEngine, RuleKind, RuleSpec
from finance_monitor.supervisor import StageSupervisor
from finance_monitor.trend_worker import parse_scored
from finance_monitor.windows import AddResult, ClosedWindow, WindowAggregator, WindowSpec

NOW = 1_790_000_000.0  # a fixed "wall clock"
SKEWS = {"max_future_skew_s": 600.0, "max_past_skew_s": 7 * 86400.0}


def _raw(**overrides: object) -> bytes:
    payload: dict[str, object] = {
        "id": "m-1",
        "published_at": "2026-09-21T14:13:20Z",  # NOW
        "source": "wire",
        "text": "Northwind Energy beats estimates",
    }
    payload.update(overrides)
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


def _parse(value: bytes | None) -> object:
    return parse_raw_message(value, max_text_chars=100, now=NOW, **SKEWS)


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "more than the limit of 32"),
        (_raw(score=float("nan")), "NaN is not valid JSON"),
        (_raw(score=float("inf")), "Infinity is not valid JSON"),
        (_raw(text="nul\x00inside"), "text: Value error, must not contain NUL"),
        (b'{"id": "x",\x00 "text": "t"}', "contains a NUL byte"),
        (b"\xc3\x28 invalid", "not UTF-8"),
        (_raw(id=["not", "a", "string"]), "id: Input should be a valid string"),
        (_raw(tickers=[""]), "tickers:"),
        (_raw(published_at="2026-09-21T14:30:00Z"), "s in the future, more than the allowed skew"),
        (_raw(published_at="2099-01-01T00:00:00Z"), "published_at:"),
        (_raw(published_at="2026-09-01T00:00:00Z"), "s in the past, more than the allowed skew"),
        (_raw(published_at="0001-01-01T00:00:00Z"), "published_at:"),
    ],
)
def test_every_kind_of_bad_raw_message_gets_a_reason(value: bytes, reason_part: str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        _parse(value)
    assert reason_part in info.value.reason


def test_messages_inside_the_skew_bounds_pass() -> None:
    assert _parse(_raw(published_at="2026-09-21T14:20:00Z")).id == "m-1"  # 400 s ahead
    assert _parse(_raw(published_at="2026-09-15T00:00:00Z")).id == "m-1"  # 6.6 days old
    # a bracket inside a string is text, not nesting
    assert _parse(_raw(text="[" * 90)).text == "[" * 90


def test_json_depth_ignores_strings_and_counts_without_recursion() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[["}]}') == 3
    assert json_depth("[" * 200_000 + "]" * 200_000) == 200_000
    assert MAX_JSON_DEPTH >= 3


def test_skew_check_rejects_non_finite_and_out_of_bound_times() -> None:
    check_event_time(NOW + 599, now=NOW, **SKEWS)
    for bad in (NOW + 601, NOW - 8 * 86400, math.nan, math.inf):
        with pytest.raises(InvalidMessageError):
            check_event_time(bad, now=NOW, **SKEWS)


def _scored(**overrides: object) -> bytes:
    payload = {
        "id": "m-1",
        "series": "topic:Earnings",
        "event_time": NOW,
        "published_at": "2026-09-21T14:13:20+00:00",
        "source": "wire",
        "title": None,
        "text": "Profit up",
        "topic": "Earnings",
        "topic_confidence": 0.9,
        "sentiment": "positive",
        "sentiment_scores": {"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        "tickers": [],
        "ingest_ts_ms": 1,
        "scored_ts_ms": 2,
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (None, "empty value"),
        (b"\xff", "not UTF-8"),
        (b"[" * 10_000, "nested"),
        (_scored(sentiment="furious"), "sentiment:"),
        (_scored(event_time="soon"), "event_time:"),
        (_scored(event_time=NOW + 86400), "event_time: 86400 s in the future"),
        (_scored(event_time=NOW - 30 * 86400), "event_time: 2592000 s in the past"),
        (_scored(topic_confidence=float("nan")), "NaN is not valid JSON"),
        (_scored(series="nonsense"), "series:"),
        (_scored(unexpected=1), "unexpected:"),
    ],
)
def test_the_trend_stage_validates_scored_records_strictly(
    value: bytes | None, reason_part: str
) -> None:
    with pytest.raises(InvalidMessageError) as info:
        parse_scored(value, now=NOW, **SKEWS)
    assert reason_part in info.value.reason
    assert isinstance(parse_scored(_scored(), now=NOW, **SKEWS), ScoredRecord)


def test_watermark_never_runs_ahead_of_wall_clock_plus_skew() -> None:
    agg = WindowAggregator([WindowSpec("t", 10, 10)], max_future_skew_s=600, clock=lambda: NOW)
    assert agg.add("future", "topic:X", NOW + 10 * 365 * 86400, "negative") is AddResult.FUTURE
    assert agg.add("nan", "topic:X", math.nan, "negative") is AddResult.FUTURE
    assert agg.max_event_time is None and agg.future_records == 2
    # a normal record right after is not late
    assert agg.add("ok", "topic:X", NOW - 5, "neutral") is AddResult.ACCEPTED
    assert agg.add("edge", "topic:X", NOW + 600, "neutral") is AddResult.ACCEPTED
    assert agg.max_event_time == NOW + 600


def test_a_restored_far_future_watermark_is_clamped() -> None:
    unbounded = WindowAggregator([WindowSpec("t", 10, 10)])
    unbounded.add("future", "topic:X", NOW + 10 * 365 * 86400, "negative")
    restored = WindowAggregator(
        [WindowSpec("t", 60, 60)], 5, 600, max_future_skew_s=600, clock=lambda: NOW
    )
    restored.load_state(unbounded.to_state())
    assert restored.max_event_time == NOW + 600  # not ten years ahead
    # with a lateness of the skew's size, records of "now" are still accepted
    assert restored.add("ok", "topic:X", NOW, "neutral") is AddResult.ACCEPTED
    broken = WindowAggregator([WindowSpec("t", 10, 10)], max_future_skew_s=600)
    broken.load_state({"max_event_time": "tomorrow"})
    assert broken.max_event_time is None


def test_dlq_envelope_keeps_small_values_and_truncates_big_ones_with_size_and_hash() -> None:
    small = dead_letter(
        b"\xff bad",
        reason="message: not UTF-8",
        stage="scorer",
        topic="raw",
        partition=3,
        offset=7,
    )
    headers = dict(small.headers)
    assert small.value == b"\xff bad" and not small.truncated
    assert headers["dlq.reason"] == b"message: not UTF-8"
    assert headers["dlq.source"] == b"raw/3/7"
    assert headers["dlq.size"] == b"5"
    assert headers["dlq.sha256"] == hashlib.sha256(b"\xff bad").hexdigest().encode()
    big_value = b"x" * 5000
    big = dead_letter(
        big_value,
        reason="r" * 10_000,
        stage="trend",
        topic="s",
        partition=0,
        offset=1,
        max_value_bytes=1000,
    )
    headers = dict(big.headers)
    assert big.truncated and big.value == big_value[:1000]
    assert headers["dlq.truncated"] == b"true"
    assert headers["dlq.size"] == b"5000"
    assert headers["dlq.sha256"] == hashlib.sha256(big_value).hexdigest().encode()
    assert len(headers["dlq.reason"]) <= 2000
    tombstone = dead_letter(
        None, reason="empty", stage="scorer", topic="raw", partition=0, offset=0
    )
    assert tombstone.value == b"" and dict(tombstone.headers)["dlq.size"] == b"0"


def _window(series: str, end: float) -> ClosedWindow:
    return ClosedWindow("tumbling", series, end - 60, end, 20, 2, 10, 8)


def test_rule_state_is_bounded_by_series_count_and_idle_time() -> None:
    rule = RuleSpec("surge", RuleKind.NEGATIVE_SURGE, series="any", min_volume=1)
    engine = RuleEngine([rule], max_series=50, idle_s=3600)
    for i in range(500):
        engine.evaluate(_window(f"ticker:T{i}", 60.0 * (i + 1)))
    assert len(engine.states) <= 50
    # the most recent series survive, an idle one is evicted after idle_s of event time
    assert ("surge", "ticker:T499") in engine.states
    engine.evaluate(_window("ticker:T499", 60.0 * 500 + 10 * 3600))
    engine._evict()
    assert list(engine.states) == [("surge", "ticker:T499")]
    restored = RuleEngine([rule], max_series=50, idle_s=3600)
    restored.load_state(engine.to_state())
    assert list(restored.states) == [("surge", "ticker:T499")]


def test_supervisor_restarts_with_backoff_and_reports_degraded() -> None:
    clock = [0.0]
    supervisor = StageSupervisor(
        backoff_s=1.0,
        backoff_max_s=8.0,
        degraded_restarts=3,
        degraded_window_s=300,
        clock=lambda: clock[0],
        rng=lambda: 1.0,
    )
    assert [supervisor.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    stop = threading.Event()
    calls = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 4:
            raise RecursionError("secret http://internal/token in the text")

    waits: list[float] = []

    class Stop:
        def is_set(self) -> bool:
            return stop.is_set()

        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    supervisor.run(flaky, "scorer", Stop())  # type: ignore[arg-type]
    assert len(calls) == 4 and waits == [1.0, 2.0, 4.0]
    (reason,) = supervisor.degraded_reasons()
    assert reason == "scorer restarted 3 times in the last 300 s (last error: RecursionError)"
    assert "http" not in reason
    clock[0] = 1000.0  # the restarts age out of the window
    assert supervisor.degraded_reasons() == []
    assert supervisor.snapshot()["scorer"]["restarts"] == 3


def test_compressed_replays_start_in_the_past_so_they_stay_inside_the_future_skew() -> None:
    from finance_monitor.cli import MAX_REPLAY_LEAD_S, replay_lead_s

    assert replay_lead_s(rate=20, time_scale=1, count=None) == 0
    # 1,000 messages at 20/s take 50 s of wall time and span 250 s of event time
    assert replay_lead_s(rate=20, time_scale=5, count=1000) == 200
    assert replay_lead_s(rate=20, time_scale=5, count=None) == MAX_REPLAY_LEAD_S
    assert SKEWS["max_past_skew_s"] > MAX_REPLAY_LEAD_S
