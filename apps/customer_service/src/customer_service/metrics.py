"""Prometheus metrics of the app (one registry per app instance, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AppMetrics:
    """Counters and histograms exported on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "cs_messages_total",
            "Customer messages by answer kind",
            ["kind"],
            registry=self.registry,
        )
        self.intents = Counter(
            "cs_intents_total",
            "Customer messages by predicted intent",
            ["intent"],
            registry=self.registry,
        )
        self.chat_latency = Histogram(
            "cs_chat_seconds",
            "Time to answer a /chat request",
            buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.feedback = Counter(
            "cs_feedback_total", "Thumbs feedback", ["rating"], registry=self.registry
        )
        self.handoffs = Counter(
            "cs_handoffs_total",
            "Conversations handed to an agent",
            ["reason"],
            registry=self.registry,
        )
        self.generated_answers = Counter(
            "cs_generated_answers_total",
            "Generated retrieval answers by outcome: shown, rejected (grounding check) "
            "or failed (generator error); the last two show the extractive answer",
            ["outcome"],
            registry=self.registry,
        )
        # Drift: the top-intent confidence of every message the model read, and how many
        # fell under the calibrated out-of-scope threshold (the fallback rate is
        # cs_messages_total{kind="fallback"}); alert thresholds in deploy/prometheus.
        self.intent_confidence = Histogram(
            "cs_intent_confidence",
            "Top-intent probability of each customer message the bot classified",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=self.registry,
        )
        self.out_of_scope = Counter(
            "cs_out_of_scope_total",
            "Customer messages whose top intent is under the calibrated out-of-scope threshold",
            registry=self.registry,
        )
        self.corrections = Counter(
            "cs_intent_corrections_total",
            "Agents' intent corrections that changed the training data, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "cs_rate_limited_total", "Requests refused by the rate limit", registry=self.registry
        )
        self.ready = Gauge("cs_ready", "1 when models are loaded", registry=self.registry)
        self.queue_length = Gauge(
            "cs_agent_queue_length",
            "Conversations waiting for or with an agent",
            registry=self.registry,
        )
