"""Event-time windows: assignment, watermark, allowed lateness, de-duplication, snapshots."""

from __future__ import annotations

import pytest

from finance_monitor.errors import RuleConfigError
from finance_monitor.windows import AddResult, WindowAggregator, WindowSpec


def test_tumbling_and_sliding_window_assignment() -> None:
    assert WindowSpec("t", 60, 60).starts_containing(125) == [120]
    assert WindowSpec("s", 300, 60).starts_containing(125) == [120, 60, 0, -60, -120]
    assert WindowSpec("t", 60, 60).starts_containing(120) == [120]


def test_bad_spec_names_the_field() -> None:
    with pytest.raises(RuleConfigError, match="step_s"):
        WindowSpec("x", 60, 120)


def test_windows_close_only_after_watermark_passes_end_plus_lateness() -> None:
    agg = WindowAggregator([WindowSpec("t", 10, 10)], watermark_delay_s=2, allowed_lateness_s=3)
    agg.add("a", "topic:X", 1, "negative")
    agg.add("b", "topic:X", 5, "positive")
    agg.add("c", "topic:X", 14, "neutral")  # watermark 12 < 10 + 3
    assert agg.close_ready() == []
    # a late record (event time 8) still counts: window [0, 10) is open until watermark >= 13
    assert agg.add("d", "topic:X", 8, "negative") is AddResult.ACCEPTED
    agg.add("e", "topic:X", 15, "neutral")  # watermark 13 -> [0, 10) closes
    (closed,) = agg.close_ready()
    assert (closed.start, closed.end, closed.count, closed.negative) == (0, 10, 3, 2)
    assert closed.negative_share == pytest.approx(2 / 3)
    assert closed.sentiment_index == pytest.approx((1 - 2) / 3)
    # now a record for the closed window is late and dropped
    assert agg.add("f", "topic:X", 9, "negative") is AddResult.LATE
    assert agg.late_records == 1


def test_redelivered_record_is_counted_once() -> None:
    agg = WindowAggregator([WindowSpec("t", 10, 10)])
    assert agg.add("a", "topic:X", 1, "negative") is AddResult.ACCEPTED
    assert agg.add("a", "topic:X", 1, "negative") is AddResult.DUPLICATE
    agg.add("z", "topic:X", 30, "neutral")
    (closed,) = agg.close_ready()
    assert closed.count == 1


def test_series_are_separate_and_snapshot_restores_open_windows() -> None:
    specs = [WindowSpec("t", 10, 10)]
    agg = WindowAggregator(specs, allowed_lateness_s=1)
    agg.add("a", "topic:X", 1, "negative")
    agg.add("b", "ticker:Y", 2, "positive")
    restored = WindowAggregator(specs, allowed_lateness_s=1)
    restored.load_state(agg.to_state())
    assert restored.add("a", "topic:X", 1, "negative") is AddResult.DUPLICATE
    restored.add("c", "topic:X", 20, "neutral")
    closed = {w.series: w for w in restored.close_ready()}
    assert closed["topic:X"].count == 1
    assert closed["ticker:Y"].positive == 1


def test_unknown_sentiment_is_an_error() -> None:
    agg = WindowAggregator([WindowSpec("t", 10, 10)])
    with pytest.raises(ValueError, match="sentiment"):
        agg.add("a", "topic:X", 1, "bearish")
