"""The trend processor end to end in memory: a surge in one topic, none in the control topic."""

from __future__ import annotations

from finance_monitor.messages import ScoredRecord
from finance_monitor.rules import RuleSpec
from finance_monitor.trend import TrendProcessor, default_window_specs


def _record(i: int, series: str, t: float, sentiment: str) -> ScoredRecord:
    return ScoredRecord(
        id=f"{series}-{i}",
        series=series,
        event_time=t,
        published_at="",
        source="test",
        title=None,
        text="",
        topic=series.split(":")[1],
        topic_confidence=1.0,
        sentiment=sentiment,
        sentiment_scores={},
        tickers=[],
        ingest_ts_ms=0,
        scored_ts_ms=0,
    )


def _stream(surge: bool) -> list[ScoredRecord]:
    records = []
    for i in range(400):  # 20 windows of 10 s, 20 messages per window per topic
        t = i * 0.5
        for series in ("topic:Oil", "topic:Gold"):
            negative = i % 5 == 0
            if surge and series == "topic:Oil" and 100 <= t < 120:
                negative = i % 5 != 0
            records.append(_record(i, series, t, "negative" if negative else "neutral"))
    return records


def _processor() -> TrendProcessor:
    rule = RuleSpec(
        id="surge",
        kind="negative_surge",
        min_volume=10,
        k=3,
        min_delta=0.2,
        min_history=3,
        cooldown_s=60,
    )
    return TrendProcessor(
        default_window_specs(10, 30, 10), [rule], watermark_delay_s=1, allowed_lateness_s=1
    )


def test_surge_alerts_once_for_its_topic_and_never_for_the_control() -> None:
    out = _processor().process(_stream(surge=True))
    assert [(a.series, a.window_start) for a in out.alerts] == [("topic:Oil", 100.0)]
    assert _processor().process(_stream(surge=False)).alerts == []


def test_restart_from_snapshot_gives_the_same_alerts_as_one_run() -> None:
    stream = _stream(surge=True)
    first = _processor()
    out1 = first.process(stream[:300])
    second = _processor()
    second.load_state(first.to_state())
    out2 = second.process(stream[250:])  # overlap = redelivery after a crash
    keys = [a.key for a in out1.alerts + out2.alerts]
    assert keys == [a.key for a in _processor().process(stream).alerts]
    assert out2.duplicates == 50
