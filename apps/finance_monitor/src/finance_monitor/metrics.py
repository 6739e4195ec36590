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
