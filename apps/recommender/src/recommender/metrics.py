"""Prometheus metrics of the recommender service (one registry per app instance)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    """Counters and histograms exported on ``/metrics``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "recommender_requests_total", "Ranking requests", ["endpoint", "bucket"], registry=r
        )
        self.latency = Histogram(
            "recommender_ranking_seconds",
            "Ranking time inside the service",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.candidates = Histogram(
            "recommender_candidates",
            "Candidates per request",
            buckets=(10, 50, 100, 250, 500, 1000),
            registry=r,
        )
        # Drift: what callers rank that the catalogue (and so popularity, co-occurrence
        # and the trained blend) has never seen, and requests without any history.
        self.candidate_items = Counter(
            "recommender_candidate_items_total",
            "Candidates ranked, by whether the catalogue knows the item",
            ["in_catalogue"],
            registry=r,
        )
        self.cold_requests = Counter(
            "recommender_cold_requests_total",
            "Ranking requests with no usable history (cold-start users)",
            registry=r,
        )
        self.uncached_texts = Counter(
            "recommender_uncached_texts_total", "Caller texts that had to be embedded", registry=r
        )
        self.events = Counter(
            "recommender_events_total", "Stored interaction events", ["type"], registry=r
        )
        self.catalogue_size = Gauge("recommender_catalogue_items", "Catalogue items", registry=r)
        self.events_rejected = Counter(
            "recommender_events_rejected_total",
            "Events refused one by one (out-of-bounds timestamp, unknown item)",
            ["reason"],
            registry=r,
        )
        self.candidate_items.labels("true")
        self.candidate_items.labels("false")
        self.cooccurrence_rebuilds = Counter(
            "recommender_cooccurrence_rebuilds_total",
            "Times the item-item co-occurrence matrix was rebuilt or replaced (model reloads"
            " only; events and catalogue changes never rebuild it)",
            registry=r,
        )
        self.events_pruned = Counter(
            "recommender_events_pruned_total", "Events deleted by the retention job", registry=r
        )
        self.reference_time = Gauge(
            "recommender_reference_time_seconds",
            "Popularity/freshness reference time (never past wall clock + allowed skew)",
            registry=r,
        )
