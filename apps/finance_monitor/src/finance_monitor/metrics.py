"""Prometheus metrics of the streaming stages (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_SCORED = Counter("finance_messages_scored_total", "Raw messages scored")
RECORDS_PRODUCED = Counter(
    "finance_scored_records_total", "Scored records produced (fan-out by series)"
)
DLQ_MESSAGES = Counter(
    "finance_dlq_messages_total", "Messages sent to the dead-letter topic", ["stage"]
)
BATCH_LATENCY = Histogram(
    "finance_scoring_batch_seconds",
    "Time to score one batch and get its records acknowledged",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "finance_scoring_batch_size",
    "Messages per scoring batch",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1024),
)
CONSUMER_LAG = Gauge(
    "finance_consumer_lag", "Messages behind the end of the log", ["group", "topic", "partition"]
)
MESSAGES_PER_SECOND = Gauge(
    "finance_scorer_messages_per_second", "Scoring rate over the last interval"
)
TREND_RECORDS = Counter(
    "finance_trend_records_total", "Scored records seen by the trend stage", ["result"]
)
WINDOWS_CLOSED = Counter("finance_windows_closed_total", "Windows closed", ["spec"])
ALERTS_FIRED = Counter("finance_alerts_total", "New alerts stored", ["rule"])
ALERT_DELIVERIES = Counter(
    "finance_alert_deliveries_total", "Alert notifications", ["channel", "outcome"]
)
WORKER_UP = Gauge("finance_worker_up", "1 while a stage's loop runs", ["stage"])
# Drift: the sentiment mix per source over time (rate() of this counter by source and
# sentiment); the alert KeelSentimentMixShift compares the last hour with the last day.
SENTIMENT_MIX = Counter(
    "finance_sentiment_total",
    "Scored messages by source and predicted sentiment",
    ["source", "sentiment"],
)
#: Distinct ``source`` label values kept per process; later sources count as ``other``,
#: so a producer inventing sources cannot blow up the metric's cardinality.
MAX_SENTIMENT_SOURCES = 50
_sentiment_sources: set[str] = set()


def record_sentiment(source: str, sentiment: str) -> None:
    """Count one scored message in :data:`SENTIMENT_MIX` (source names capped)."""
    name = source.strip()[:64] or "unknown"
    if name not in _sentiment_sources:
        if len(_sentiment_sources) >= MAX_SENTIMENT_SOURCES:
            name = "other"
        else:
            _sentiment_sources.add(name)
    SENTIMENT_MIX.labels(name, sentiment).inc()


def _counter(name: str, documentation: str, labels: list[str]) -> Counter:
    """A counter registered once per process (reused if another module registered it)."""
    from prometheus_client import REGISTRY

    try:
        return Counter(name, documentation, labels)
    except ValueError:  # already registered in this process (e.g. by another app's module)
        return REGISTRY._names_to_collectors[name]  # type: ignore[return-value]


WORKER_RESTARTS = _counter(
    "worker_restarts", "Restarts of a streaming stage after it failed", ["stage"]
)
RETENTION_DELETED = Counter(
    "finance_retention_deleted_total", "Rows removed by the retention job", ["table"]
)
SSE_SUBSCRIBERS = Gauge("finance_sse_subscribers", "Open dashboard event streams")
MESSAGES_BY_LANGUAGE = Counter(
    "finance_messages_scored_by_language_total",
    "Raw messages scored, by language (zh: Chinese heads, en: English heads)",
    ["lang"],
)
TEXTS_BY_TIER = Counter(
    "finance_texts_scored_by_tier_total",
    "Texts the English scoring model answered (repeat-cache hits excluded), by tier "
    "(static: the static-embedding first tier was sure; transformer: the fallback)",
    ["tier"],
)


def record_tier_route(static_rows: int, transformer_rows: int) -> None:
    """Count one cascade batch in :data:`TEXTS_BY_TIER` (the cascade's ``on_route``)."""
    if static_rows:
        TEXTS_BY_TIER.labels("static").inc(static_rows)
    if transformer_rows:
        TEXTS_BY_TIER.labels("transformer").inc(transformer_rows)
