"""Wires settings, store, models and the streaming stages together for one process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from finance_monitor.config import Settings
from finance_monitor.dispatcher import AlertDispatcher
from finance_monitor.kafka_io import ensure_topics, make_producer
from finance_monitor.model_prep import PrepConfig, load_scoring_model, prepare_models
from finance_monitor.rules import load_rules_file
from finance_monitor.scorer_worker import ScorerConfig, ScorerWorker
from finance_monitor.scoring import ScoringModel
from finance_monitor.store import MonitorStore
from finance_monitor.tickers import TickerExtractor, load_companies
from finance_monitor.trend import default_window_specs
from finance_monitor.trend_worker import TrendConfig, TrendWorker

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> MonitorStore:
    """Open the SQLite store and seed the rules from YAML on first use."""
    store = MonitorStore(settings.database_path)
    store.seed_rules(load_rules_file(settings.rules_file))
    return store


def prep_config(settings: Settings, show_progress: bool = True) -> PrepConfig:
    """Model-preparation options from the settings."""
    return PrepConfig(
        models_dir=settings.models_dir,
        data_dir=settings.data_dir,
        budget=settings.budget,
        max_length=settings.model_max_length,
        num_threads=settings.num_threads,
        show_progress=show_progress,
    )


def load_model(settings: Settings, progress: Callable[[str], None] = log.info) -> ScoringModel:
    """Prepare (or reuse) and load the served scoring model."""
    served = prepare_models(prep_config(settings, show_progress=False), progress=progress)
    return load_scoring_model(served, settings.num_threads, settings.batch_size)


def all_topics(settings: Settings) -> dict[str, int]:
    """The four topics with their partition counts."""
    n = settings.topic_partitions
    return {
        settings.raw_topic: n,
        settings.scored_topic: n,
        settings.dlq_topic: 1,
        settings.alerts_topic: 1,
    }


def build_scorer(settings: Settings, model: ScoringModel) -> ScorerWorker:
    """A scorer worker configured from the settings."""
    config = ScorerConfig(
        bootstrap=settings.kafka_bootstrap_servers,
        raw_topic=settings.raw_topic,
        scored_topic=settings.scored_topic,
        dlq_topic=settings.dlq_topic,
        group_id=settings.scorer_group,
        batch_size=settings.batch_size,
        max_text_chars=settings.max_text_chars,
    )
    return ScorerWorker(config, model, TickerExtractor(load_companies(settings.companies_file)))


def build_trend(settings: Settings, store: MonitorStore) -> TrendWorker:
    """A trend worker configured from the settings."""
    config = TrendConfig(
        bootstrap=settings.kafka_bootstrap_servers,
        scored_topic=settings.scored_topic,
        dlq_topic=settings.dlq_topic,
        group_id=settings.trend_group,
        specs=tuple(
            default_window_specs(
                settings.window_size_s, settings.sliding_size_s, settings.sliding_step_s
            )
        ),
        watermark_delay_s=settings.watermark_delay_s,
        allowed_lateness_s=settings.allowed_lateness_s,
    )
    return TrendWorker(config, store)


def build_dispatcher(settings: Settings, store: MonitorStore) -> AlertDispatcher:
    """An alert dispatcher with its own producer."""
    return AlertDispatcher(
        store,
        make_producer(settings.kafka_bootstrap_servers),
        settings.alerts_topic,
        settings.webhook_urls,
        settings.group_by,
        settings.group_wait_s,
        settings.webhook_max_retries,
        settings.webhook_backoff_s,
    )


def run_forever(
    target: Callable[[], None], name: str, stop: threading.Event, retry_s: float = 2.0
) -> None:
    """Run a worker loop; if it crashes (broker gone), log it and start it again."""
    while not stop.is_set():
        try:
            target()
            return
        except Exception:
            log.exception("%s stopped with an error; restarting in %.0fs", name, retry_s)
            stop.wait(retry_s)


class MonitorRuntime:
    """Everything one API process runs: store, model, and (optionally) the three stages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)
        self.model: ScoringModel | None = None
        self.state = "starting"
        self.error: str | None = None
        self.scorer: ScorerWorker | None = None
        self.trend: TrendWorker | None = None
        self.dispatcher: AlertDispatcher | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()

    def start(self) -> None:
        """Prepare in the background so the HTTP server answers (503) while models load."""
        thread = threading.Thread(target=self._start, name="fm-startup", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start(self) -> None:
        try:
            self.state = "preparing models"
            self.model = load_model(self.settings)
            if self.settings.run_workers:
                self.state = "connecting to Kafka"
                ensure_topics(
                    self.settings.kafka_bootstrap_servers, all_topics(self.settings), timeout_s=120
                )
                self.scorer = build_scorer(self.settings, self.model)
                self.trend = build_trend(self.settings, self.store)
                self.dispatcher = build_dispatcher(self.settings, self.store)
                for name, target in (
                    ("scorer", self.scorer.run),
                    ("trend", self.trend.run),
                    ("dispatcher", self.dispatcher.run),
                ):
                    thread = threading.Thread(
                        target=run_forever,
                        args=(target, name, self._stop),
                        name=f"fm-{name}",
                        daemon=True,
                    )
                    thread.start()
                    self._threads.append(thread)
            self.state = "ready"
        except Exception as exc:
            log.exception("finance monitor failed to start")
            self.state = "failed"
            self.error = str(exc)

    @property
    def ready(self) -> bool:
        """Models loaded (and, with workers, topics created and stages started)."""
        return self.state == "ready"

    def health(self) -> dict[str, Any]:
        """Details for ``/healthz``."""
        workers: dict[str, Any] = {}
        if self.scorer is not None:
            workers["scorer"] = {
                "running": self.scorer.running,
                "processed": self.scorer.processed,
                "dead_lettered": self.scorer.dead_lettered,
            }
        if self.trend is not None:
            workers["trend"] = {
                "running": self.trend.running,
                "records": self.trend.records_seen,
                "partitions": sorted(self.trend.processors),
            }
        return {
            "state": self.state,
            "error": self.error,
            "model": "loaded" if self.model is not None else "not loaded",
            "workers": workers if self.settings.run_workers else "disabled",
            "kafka": self.settings.kafka_bootstrap_servers,
        }

    def stop(self) -> None:
        """Stop the stages (each finishes its batch and checkpoints)."""
        self._stop.set()
        for worker in (self.scorer, self.trend, self.dispatcher):
            if worker is not None:
                worker.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        self.store.close()
