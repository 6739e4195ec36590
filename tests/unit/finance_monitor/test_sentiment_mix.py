"""The sentiment-mix drift counter: one sample per source and sentiment, sources capped."""

import pytest
from prometheus_client import REGISTRY

from finance_monitor import metrics


def _count(source: str, sentiment: str) -> float:
    value = REGISTRY.get_sample_value(
        "finance_sentiment_total", {"source": source, "sentiment": sentiment}
    )
    return value or 0.0


def test_sentiment_mix_counts_by_source_and_caps_the_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_sentiment_sources", set())
    monkeypatch.setattr(metrics, "MAX_SENTIMENT_SOURCES", 2)
    before = {
        key: _count(*key)
        for key in [("wire", "negative"), ("blog", "positive"), ("other", "neutral")]
    }
    metrics.record_sentiment("wire", "negative")
    metrics.record_sentiment(" wire ", "negative")
    metrics.record_sentiment("blog", "positive")
    metrics.record_sentiment("a-third-source", "neutral")  # over the cap: counted as other
    assert _count("wire", "negative") - before[("wire", "negative")] == 2
    assert _count("blog", "positive") - before[("blog", "positive")] == 1
    assert _count("other", "neutral") - before[("other", "neutral")] == 1
    assert _count("a-third-source", "neutral") == 0
