"""Wires settings, store, models and the streaming stages together for one process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finance_monitor.config import Settings
from finance_monitor.dispatcher import AlertDispatcher
from finance_monitor.encoder_tuning import (
    EncoderChoice,
    choose_encoder,
    export_choice,
    sample_texts,
)
from finance_monitor.feed import HeadlineFeed
from finance_monitor.kafka_io import ensure_topics, make_producer
from finance_monitor.model_prep import PrepConfig, load_scoring_model, prepare_models
from finance_monitor.rules import load_rules_file
from finance_monitor.scorer_worker import ScorerConfig, ScorerWorker
from finance_monitor.scoring import ScoringModel
from finance_monitor.storage import MonitorStore
from finance_monitor.supervisor import StageSupervisor
from finance_monitor.tickers import TickerExtractor, load_companies
from finance_monitor.trend import default_window_specs
from finance_monitor.trend_worker import TrendConfig, TrendWorker
from keel_service import Budget
from keel_service.heap import freeze_startup_heap
from keel_service.threads import serving_threads
from keel_service.upgrade import CandidateResult, ModelUpgrader, ServedModel

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> MonitorStore:
    """Open the store (migrated to the newest schema) and seed the rules from YAML on first use."""
    store = MonitorStore(settings.store_url)
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
        static_tier=settings.static_tier,
    )


def load_model(settings: Settings, progress: Callable[[str], None] = log.info) -> ScoringModel:
    """Prepare (or reuse) and load the served scoring model."""
    return load_tuned_model(settings, progress)[0]


def load_tuned_model(
    settings: Settings, progress: Callable[[str], None] = log.info
) -> tuple[ScoringModel, EncoderChoice]:
    """Prepare (or reuse) and load the served scoring model, with the encoder threads and
    batch size measured fastest on this machine (``finance_monitor.encoder_tuning``)."""
    served = prepare_models(prep_config(settings, show_progress=False), progress=progress)
    model, choice = choose_encoder(
        lambda threads, batch: load_scoring_model(
            served, threads, batch, static_tier=settings.static_tier
        ),
        cores=serving_threads(None),
        num_threads=settings.num_threads,
        batch_size=settings.batch_size,
        encoder_batch_size=settings.encoder_batch_size,
        texts=sample_texts() if settings.tune_encoder else [],
        tune=settings.tune_encoder,
    )
    export_choice(choice)
    if settings.chinese:
        from finance_monitor.chinese import load_chinese_model, prepare_chinese_models

        zh_served = prepare_chinese_models(
            prep_config(settings, show_progress=False), progress=progress
        )
        model.chinese = load_chinese_model(zh_served, model, choice.threads, choice.batch_size)
    return model, choice


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
        max_future_skew_s=settings.max_future_skew_s,
        max_past_skew_s=settings.max_past_skew_s,
        dedup_cache_size=settings.dedup_cache_size,
        score_cache_size=settings.score_cache_size,
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
        max_future_skew_s=settings.max_future_skew_s,
        max_past_skew_s=settings.max_past_skew_s,
        rule_state_max_series=settings.rule_state_max_series,
        rule_state_idle_s=settings.rule_state_idle_s,
        evidence_size=settings.evidence_size,
        resolve_after_windows=settings.resolve_after_windows,
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
        max_backoff_s=settings.webhook_max_backoff_s,
        claim_timeout_s=settings.delivery_claim_timeout_s,
        timeout_s=settings.webhook_timeout_s,
        alertmanager_url=settings.alertmanager_url,
        resend_s=settings.alertmanager_resend_s,
        max_firing_s=settings.alert_max_firing_s,
        public_url=settings.dashboard_url,
        send_resolved=settings.webhook_send_resolved,
    )


def build_supervisor(settings: Settings) -> StageSupervisor:
    """A stage supervisor with the settings' restart backoff and degraded threshold."""
    return StageSupervisor(
        backoff_s=settings.restart_backoff_s,
        backoff_max_s=settings.restart_backoff_max_s,
        degraded_restarts=settings.degraded_restarts,
        degraded_window_s=settings.degraded_window_s,
    )


def run_retention(settings: Settings, store: MonitorStore, stop: threading.Event) -> None:
    """Periodically delete trend points and finished alerts older than their retention."""
    while not stop.is_set():
        try:
            store.apply_retention(
                trend_points_days=settings.retention_days_trend_points,
                alerts_days=settings.retention_days_alerts,
            )
        except Exception as exc:  # retried at the next interval
            log.warning("retention run failed (%s); retrying later", type(exc).__name__)
        stop.wait(settings.retention_interval_s)


class MonitorRuntime:
    """Everything one API process runs: store, model, and (optionally) the three stages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)
        self.model: ScoringModel | None = None
        # The encoder threads and batch size in use (measured at start-up).
        self.encoder: EncoderChoice | None = None
        self.state = "starting"
        self.error: str | None = None
        self.scorer: ScorerWorker | None = None
        self.trend: TrendWorker | None = None
        self.dispatcher: AlertDispatcher | None = None
        # Latest headlines + per-language counts for the dashboard (fed by the scorer
        # thread; stays empty when the stages run as their own processes).
        self.feed = HeadlineFeed()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.supervisor = build_supervisor(settings)
        self.started_at = time.time()
        # The live upgrade (``upgrade`` setting, finance_monitor.upgrade).
        self.upgrader: ModelUpgrader | None = None

    def start(self) -> None:
        """Prepare in the background so the HTTP server answers (503) while models load."""
        thread = threading.Thread(target=self._start, name="fm-startup", daemon=True)
        thread.start()
        self._threads.append(thread)
        retention = threading.Thread(
            target=run_retention,
            args=(self.settings, self.store, self._stop),
            name="fm-retention",
            daemon=True,
        )
        retention.start()
        self._threads.append(retention)

    def _start(self) -> None:
        try:
            self.state = "preparing models"
            self.model, self.encoder = load_tuned_model(self.settings)
            if self.settings.run_workers:
                self.state = "connecting to Kafka"
                ensure_topics(
                    self.settings.kafka_bootstrap_servers, all_topics(self.settings), timeout_s=120
                )
                self.scorer = build_scorer(self.settings, self.model)
                self.scorer.feed = self.feed
                self.trend = build_trend(self.settings, self.store)
                self.dispatcher = build_dispatcher(self.settings, self.store)
                for name, target in (
                    ("scorer", self.scorer.run),
                    ("trend", self.trend.run),
                    ("dispatcher", self.dispatcher.run),
                ):
                    thread = threading.Thread(
                        target=self.supervisor.run,
                        args=(target, name, self._stop),
                        name=f"fm-{name}",
                        daemon=True,
                    )
                    thread.start()
                    self._threads.append(thread)
            # Before the app reports ready, so /healthz never shows the upgrade "off"
            # in the moment between readiness and the upgrade's start.
            self._start_upgrade()
            self.state = "ready"
            freeze_startup_heap()
        except Exception as exc:
            log.exception("finance monitor failed to start")
            self.state = "failed"
            # The class only: exception text can quote URLs, paths or credentials.
            self.error = type(exc).__name__

    def _start_upgrade(self) -> None:
        """Train the full scoring model in the background (``upgrade`` on, fast budget)."""
        if not self.settings.upgrade or self.settings.budget is not Budget.FAST:
            return
        from finance_monitor.model_prep import SERVED_DIR
        from finance_monitor.upgrade import make_upgrader

        def served_dir() -> str:  # the cached fast model's folder (prepared at start-up)
            return str(prepare_models(prep_config(self.settings, False), progress=log.debug))

        def swap(folder: Path, result: CandidateResult) -> None:
            # The settings measured at start-up (the upgraded model has the same encoder).
            encoder = self.encoder
            model = load_scoring_model(
                folder / SERVED_DIR,
                encoder.threads if encoder else self.settings.num_threads,
                encoder.batch_size if encoder else self.settings.batch_size,
                static_tier=self.settings.static_tier,
            )
            old = self.model
            if old is not None:
                model.chinese = old.chinese  # the Chinese heads are not upgraded
            self.model = model
            if self.scorer is not None:
                # The model first, then a fresh verdict cache: a batch in flight may put
                # the new model's verdicts in the old cache, never the old model's in the new.
                self.scorer.model = model
                self.scorer.score_cache = type(self.scorer.score_cache)(
                    self.settings.score_cache_size
                )

        self.upgrader = make_upgrader(self.settings, served_dir, swap)
        self.upgrader.start()

    def model_status(self) -> dict[str, Any]:
        """Tier, validation score and upgrade progress of the scoring model (``/healthz``)."""
        from finance_monitor.scoring import tier_status

        tier = {"static_tier": tier_status(self.model)} if self.model is not None else {}
        if self.encoder is not None:
            tier["encoder"] = self.encoder.as_dict()
        if self.upgrader is not None:
            return {"name": "scoring", **self.upgrader.snapshot(), **tier}
        served = ServedModel(self.settings.budget.value, None, "mean head accuracy")
        return {"name": "scoring", **served.as_dict(), "upgrade": {"state": "off"}, **tier}

    @property
    def ready(self) -> bool:
        """Models loaded (and, with workers, topics created and stages started)."""
        return self.state == "ready"

    def status(self) -> tuple[str, list[str]]:
        """``ok``, ``degraded`` (stages restarting too often) or ``unavailable``, with reasons."""
        if not self.ready:
            return "unavailable", [f"state: {self.state}"]
        reasons = self.supervisor.degraded_reasons()
        return ("degraded", reasons) if reasons else ("ok", [])

    def health(self) -> dict[str, Any]:
        """Details for ``/healthz`` (counts and error classes; never exception text or URLs)."""
        workers: dict[str, Any] = {}
        restarts = self.supervisor.snapshot()
        if self.scorer is not None:
            workers["scorer"] = {
                "running": self.scorer.running,
                "processed": self.scorer.processed,
                "dead_lettered": self.scorer.dead_lettered,
                **restarts.get("scorer", {"restarts": 0, "last_error": None}),
            }
        if self.trend is not None:
            workers["trend"] = {
                "running": self.trend.running,
                "records": self.trend.records_seen,
                "accepted": self.trend.accepted,
                "dead_lettered": self.trend.dead_lettered,
                "partitions": sorted(self.trend.processors),
                **restarts.get("trend", {"restarts": 0, "last_error": None}),
            }
        if self.dispatcher is not None:
            workers["dispatcher"] = restarts.get("dispatcher", {"restarts": 0, "last_error": None})
        status, reasons = self.status()
        return {
            "status": status,
            "reasons": reasons,
            "state": self.state,
            "error": self.error,
            # Tier, validation score and live-upgrade progress (keel_service.upgrade).
            "model": self.model_status() if self.model is not None else "not loaded",
            "workers": workers if self.settings.run_workers else "disabled",
        }

    def stop(self) -> None:
        """Stop the stages (each finishes its batch and checkpoints)."""
        self._stop.set()
        if self.upgrader is not None:
            self.upgrader.close()
        for worker in (self.scorer, self.trend, self.dispatcher):
            if worker is not None:
                worker.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        self.store.close()
