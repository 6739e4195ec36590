"""Alert lifecycle and evidence: firing until the condition clears (or the series goes
quiet), checkpointed, and each window's bounded sample of its most negative messages."""

from __future__ import annotations

import json

from finance_monitor.messages import ScoredRecord
from finance_monitor.rules import RuleEngine, RuleSpec
from finance_monitor.trend import TrendProcessor
from finance_monitor.windows import ClosedWindow, WindowAggregator, WindowSpec, evidence_entry

SURGE = RuleSpec(
    id="surge", kind="negative_surge", min_volume=10, k=3, min_delta=0.2, min_history=3,
    cooldown_s=0,
)  # fmt: skip


def _window(i: int, negative: int, count: int = 20) -> ClosedWindow:
    return ClosedWindow("tumbling", "topic:Oil", i * 60.0, (i + 1) * 60.0, count, negative,
                        count - negative, 0)  # fmt: skip


def test_an_alert_fires_once_while_the_condition_holds_and_resolves_when_it_clears() -> None:
    engine = RuleEngine([SURGE])
    fired, resolved = [], []
    for i, neg in enumerate([2, 3, 2, 2, 15, 16, 16, 2, 2]):
        fired += [(i, a.key) for a in engine.evaluate(_window(i, neg))]
        resolved += [(i, r) for r in engine.take_resolved()]
    assert [i for i, _ in fired] == [4]  # windows 5 and 6 continue the same alert
    ((when, resolution),) = resolved
    assert when == 7 and resolution.key == fired[0][1] and resolution.at == 8 * 60.0


def test_resolve_after_several_quiet_windows_and_low_volume_counts_as_quiet() -> None:
    engine = RuleEngine([SURGE], resolve_after=2)
    for i, neg in enumerate([2, 3, 2, 2, 15]):
        engine.evaluate(_window(i, neg))
    engine.evaluate(_window(5, 1, count=3))  # below min_volume: the condition does not hold
    assert engine.take_resolved() == []
    engine.evaluate(_window(6, 2))
    assert len(engine.take_resolved()) == 1


def test_a_series_that_goes_silent_is_resolved_by_the_watermark() -> None:
    engine = RuleEngine([SURGE])
    for i, neg in enumerate([2, 3, 2, 2, 15]):
        engine.evaluate(_window(i, neg))
    engine.resolve_idle(watermark=5 * 60.0 + 60, window_sizes={"tumbling": 60.0})
    assert engine.take_resolved() == []  # one window length: not yet
    engine.resolve_idle(watermark=5 * 60.0 + 120, window_sizes={"tumbling": 60.0})
    assert len(engine.take_resolved()) == 1


def test_the_firing_state_survives_a_checkpoint() -> None:
    engine = RuleEngine([SURGE])
    for i, neg in enumerate([2, 3, 2, 2, 15]):
        engine.evaluate(_window(i, neg))
    restored = RuleEngine([SURGE])
    restored.load_state(json.loads(json.dumps(engine.to_state())))
    assert restored.evaluate(_window(5, 16)) == []  # still the same alert
    restored.evaluate(_window(6, 2))
    assert len(restored.take_resolved()) == 1


def test_windows_keep_a_bounded_sample_of_the_most_negative_messages() -> None:
    agg = WindowAggregator([WindowSpec("tumbling", 60, 60)], evidence_size=3)
    for i in range(10):
        scores = {"negative": i / 10, "neutral": 1 - i / 10, "positive": 0.0}
        sentiment = "negative" if i >= 5 else "neutral"
        entry = evidence_entry(f"m{i}", "x" * 1000, "wire", sentiment, scores, 1.0 + i)
        agg.add(f"m{i}", "topic:Oil", 1.0 + i, sentiment, entry)
    state = json.loads(json.dumps(agg.to_state()))
    again = WindowAggregator([WindowSpec("tumbling", 60, 60)], evidence_size=3)
    again.load_state(state)
    again.add("late", "topic:Oil", 200.0, "neutral")  # moves the watermark past the window
    (window,) = [w for w in again.close_ready() if w.start == 0]
    assert [e["id"] for e in window.evidence] == ["m9", "m8", "m7"]
    assert window.evidence[0]["probability"] == 0.9 and len(window.evidence[0]["text"]) == 280


def test_a_fired_alert_carries_its_windows_evidence() -> None:
    processor = TrendProcessor([WindowSpec("tumbling", 60, 60)], [SURGE], evidence_size=5)
    records = []
    for w, neg in enumerate([2, 3, 2, 2, 15, 2, 2]):
        for j in range(20):
            negative = j < neg
            records.append(
                ScoredRecord(
                    id=f"w{w}-{j}",
                    series="topic:Oil",
                    event_time=w * 60.0 + j,
                    published_at="",
                    source="wire",
                    title=f"Title {w}-{j}",
                    text="body",
                    topic="Oil",
                    topic_confidence=0.9,
                    sentiment="negative" if negative else "neutral",
                    sentiment_scores={
                        "negative": 0.5 + j / 100 if negative else 0.1,
                        "neutral": 0.5,
                        "positive": 0.0,
                    },
                    tickers=[],
                    ingest_ts_ms=0,
                    scored_ts_ms=0,
                )
            )
    out = processor.process(records)
    (alert,) = out.alerts
    assert alert.window_start == 240.0
    assert [e["id"] for e in alert.evidence] == [f"w4-{j}" for j in (14, 13, 12, 11, 10)]
    assert (
        alert.evidence[0]["text"] == "Title 4-14" and alert.evidence[0]["sentiment"] == "negative"
    )
    assert [r.key for r in out.resolved] == [alert.key]
