"""The loaded app: models, knowledge base, store and dialogue manager, built once per process."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer_service import engine
from customer_service.config import Settings
from customer_service.dialogue import DialogueManager, DialoguePolicy
from customer_service.errors import GeneratorUnavailableError, NotReadyError
from customer_service.generation import SmolLMGenerator
from customer_service.intents import IntentModel
from customer_service.kb_store import DocumentStore
from customer_service.kb_sync import KnowledgeBaseFollower
from customer_service.knowledge_base import KnowledgeBase
from customer_service.languages import LanguagePipeline, language_settings
from customer_service.metrics import AppMetrics
from customer_service.pii import install_log_masking
from customer_service.pipelines import KnowledgeBaseRouter, build_pipeline
from customer_service.prepare import (
    INTENT_RECORD,
    IntentArtifacts,
    load_content_documents,
    load_serving_models,
    open_knowledge_base,
    prepare_intent_model,
)
from customer_service.storage import ConversationStore
from customer_service.templates import TemplateBook
from customer_service.upgrade import ExtraDataProvider, make_upgrader
from keel_service import Budget, PeriodicJob, RateLimiter, public_error
from keel_service.heap import freeze_startup_heap
from keel_service.offload import BlockingLimit
from keel_service.threads import limit_faiss_threads, serving_threads
from keel_service.upgrade import CandidateResult, ModelUpgrader, ServedModel

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request handler needs once the app is ready."""

    settings: Settings
    store: ConversationStore
    dialogue: DialogueManager
    knowledge_base: KnowledgeBase
    templates: TemplateBook
    intent: IntentArtifacts
    batcher: Any
    documents: DocumentStore
    kb_follower: KnowledgeBaseFollower
    load_seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    # The pipelines of the languages served besides the default one (languages.py).
    other_languages: list[LanguagePipeline] = field(default_factory=list)

    def close(self) -> None:
        self.batcher.close()
        for pipeline in self.other_languages:
            pipeline.batcher.close()
        self.store.close()


def build_services(settings: Settings, show_progress: bool = False) -> Services:
    """Prepare (or load cached) models and indexes and wire the dialogue manager."""
    started = time.perf_counter()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # Encoder threads: the cores shared among the server's worker processes unless
    # num_threads is set; faiss searches one query at a time (keel_service.threads).
    settings = settings.model_copy(update={"num_threads": serving_threads(settings.num_threads)})
    limit_faiss_threads(1)
    # The default language's pipeline is wired here; the others by build_pipeline.
    language, *others = settings.language_list
    primary = language_settings(settings, language)
    intent = prepare_intent_model(primary, report=log.info)
    models = load_serving_models(primary, intent)
    predictor = models.predictor
    batcher = engine.make_batched_classifier(
        predictor, settings.batch_max_size, settings.batch_max_wait_ms
    )
    classify = engine.batched_classify(models.predictor, batcher)

    intents = IntentModel(classify, predictor.labels, intent.threshold)
    store = ConversationStore(settings.resolved_database_url)
    documents = DocumentStore(store.engine, store.write_gate)
    knowledge_base = open_knowledge_base(
        primary, models.embedder, models.embedder_id, models.search_mode
    )
    pipelines = [build_pipeline(settings, other) for other in others]
    served: KnowledgeBase | KnowledgeBaseRouter = knowledge_base
    if pipelines:
        served = KnowledgeBaseRouter(
            {language: knowledge_base, **{p.language: p.kb for p in pipelines}}
        )
    # The database is the knowledge base every replica shares: the content files are
    # written to it once (per content), then this replica's index follows it.
    follower = KnowledgeBaseFollower(documents, served)  # type: ignore[arg-type]
    seeded = follower.seed(load_content_documents(settings))
    templates = TemplateBook.load(primary.content_path("templates.yaml"), language)
    policy = DialoguePolicy(
        template_threshold=settings.template_threshold,
        clarify_margin=settings.clarify_margin,
        clarify_min_probability=settings.clarify_min_probability,
        fallback_after=settings.fallback_after,
        retrieval_k=settings.retrieval_k,
        history_turns=settings.history_turns,
        generation_passages=settings.generation_passages,
        grounding_min_overlap=settings.grounding_min_overlap,
    )
    generator, generation_status = load_generator(settings)
    dialogue = DialogueManager(
        store,
        intents,
        knowledge_base,
        templates,
        policy,
        generator,
        language=language,
        extra_languages=pipelines,
    )
    # Warm the encoders so the first customer does not pay for lazy initialisation.
    for pipeline in dialogue.pipelines():
        warm = WARM_UP_TEXTS[pipeline.language]
        pipeline.intents.predict(warm[0])
        pipeline.kb.search(warm[1], k=1)
    return Services(
        settings=settings,
        store=store,
        dialogue=dialogue,
        knowledge_base=served,  # type: ignore[arg-type]
        templates=templates,
        intent=intent,
        batcher=batcher,
        documents=documents,
        kb_follower=follower,
        load_seconds=round(time.perf_counter() - started, 1),
        details={
            "ingest": seeded.as_dict() if seeded.changed else "unchanged",
            "generation": generation_status,
        },
        other_languages=pipelines,
    )


# A message and a search per language, run once at start-up.
WARM_UP_TEXTS = {"en": ("hello", "opening hours"), "zh": ("你好", "人工客服时间")}


def load_generator(settings: Settings) -> tuple[SmolLMGenerator | None, str]:
    """SmolLM2 when ``generation`` is on and it loads, with a status for ``/healthz``.

    A model that does not load is logged as an error and the app answers extractively:
    generated answers are an optional extra, not a reason to refuse customers.
    """
    if not settings.generation:
        return None, "off"
    try:
        generator = SmolLMGenerator.load(
            settings.generator_dir,
            max_new_tokens=settings.generation_max_new_tokens,
            num_threads=settings.num_threads,
        )
    except GeneratorUnavailableError as exc:
        log.error("generated answers are OFF, using extractive answers only: %s", exc)
        return None, f"unavailable: {exc}"
    return generator, "on"


class AppRuntime:
    """Holds the services; builds them on a background thread so ``/healthz`` can say
    "starting" meanwhile, and records a start-up failure instead of dying silently."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = AppMetrics()
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.services: Services | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.retention: PeriodicJob | None = None
        self.kb_poll: PeriodicJob | None = None
        # The live upgrade (``upgrade`` setting) and the extra labelled data it trains
        # on (agent corrections); see customer_service.upgrade.
        self.upgrader: ModelUpgrader | None = None
        self.extra_intent_data: ExtraDataProvider | None = None
        # At most ``settings.chat_threads`` /chat turns of this worker at once.
        self.chat_lane = BlockingLimit()

    def start(self, background: bool = True) -> None:
        # Logging is configured by now (uvicorn and create_app): mask every handler.
        install_log_masking()
        if background:
            self._thread = threading.Thread(target=self._build, name="cs-startup", daemon=True)
            self._thread.start()
        else:
            self._build()

    def _build(self) -> None:
        try:
            services = build_services(self.settings)
            # The first purge runs before the app reports ready: expired conversations
            # are never served, not even in the first minutes after a start.
            self.retention = start_retention_job(services)
            self.kb_poll = PeriodicJob(
                "cs-kb-poll", self.settings.kb_poll_interval_s, services.kb_follower.poll
            )
            self.kb_poll.start()
            # Before the app reports ready, so /healthz never shows the upgrade "off"
            # in the moment between readiness and the upgrade's start.
            self._start_upgrade(services)
            self.services = services
            self.metrics.ready.set(1)
            log.info("customer-service ready in %.1f s", services.load_seconds)
            freeze_startup_heap()
        except Exception as exc:  # reported on /healthz and in the log, not swallowed
            log.exception("customer-service start-up failed")
            self.error = public_error("start-up failed", exc)

    def wait(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def require(self) -> Services:
        """The services, or ``NotReadyError`` while starting (or after a failed start)."""
        if self.services is None:
            raise NotReadyError(self.error or "models are still loading")
        return self.services

    def _start_upgrade(self, services: Services) -> None:
        """Train the production intent model in the background (``upgrade`` on, fast tier)."""
        if not self.settings.upgrade or self.settings.budget is not Budget.FAST:
            return

        def swap(folder: Path, result: CandidateResult) -> None:
            swap_intent_model(services, read_candidate(folder))

        self.upgrader = make_upgrader(
            self.settings,
            ServedModel("fast", services.intent.validation_accuracy),
            lambda: services.intent.model_dir,
            lambda: self.extra_intent_data,
            swap,
        )
        self.upgrader.start()

    def request_upgrade(self) -> bool:
        """Retrain now (e.g. after new corrections); False when the upgrade is off."""
        if self.upgrader is None:
            return False
        self.upgrader.request()
        return True

    def model_status(self) -> dict[str, Any]:
        """Tier, validation score and upgrade progress of the intent model (``/healthz``)."""
        if self.upgrader is not None:
            return {"name": "intent", **self.upgrader.snapshot()}
        services = self.services
        score = services.intent.validation_accuracy if services is not None else None
        tier = self.settings.budget.value
        return {"name": "intent", **ServedModel(tier, score).as_dict(), "upgrade": {"state": "off"}}

    def close(self) -> None:
        if self.upgrader is not None:
            self.upgrader.close()
        for job in (self.retention, self.kb_poll):
            if job is not None:
                job.stop()
        if self.services is not None:
            self.services.close()


def start_retention_job(services: Services) -> PeriodicJob | None:
    """Purge expired conversations now and every ``retention_interval_s``; ``None`` when
    ``retention_days`` is 0 (keep forever)."""
    settings = services.settings
    if settings.retention_days <= 0:
        return None

    def purge() -> None:
        deleted = services.store.purge_expired(time.time(), settings.retention_days)
        if deleted:
            log.info(
                "retention: deleted %d conversations idle over %d days",
                deleted,
                settings.retention_days,
            )

    job = PeriodicJob("cs-retention", settings.retention_interval_s, purge)
    job.run_once()
    job.start()
    return job


def reload_intent_model(services: Services) -> IntentArtifacts:
    """Retrain (if the inputs changed) and swap the intent model of a running app."""
    settings = language_settings(services.settings, services.dialogue.language)
    artifacts = prepare_intent_model(settings, report=log.info)
    if artifacts.model_dir == services.intent.model_dir:
        return artifacts
    if services.intent.fingerprint == f"upgrade-{artifacts.fingerprint}":
        return services.intent  # a live upgrade of these very inputs serves: keep it
    swap_intent_model(services, artifacts)
    return artifacts


def read_candidate(folder: Path) -> IntentArtifacts:
    """The intent model a live upgrade built in ``folder`` (``intent.json`` beside it)."""
    record = json.loads((folder / INTENT_RECORD).read_text(encoding="utf-8"))
    artifacts = IntentArtifacts(**record)
    artifacts.model_dir = str((folder / artifacts.model_dir).resolve())
    return artifacts


#: How long a replaced micro-batcher keeps serving the requests that already hold it.
RETIRE_AFTER_S = 30.0


def swap_intent_model(
    services: Services, artifacts: IntentArtifacts, budget: Budget | None = None
) -> None:
    """Serve ``artifacts``: everything new is loaded (and the knowledge base re-embedded
    when the encoder changes) first, then swapped in by assignment; requests in flight
    finish on the old model, whose batcher is closed ``RETIRE_AFTER_S`` later.
    ``budget``: the one the model was trained with (a live upgrade's is ``full``)."""
    settings = language_settings(services.settings, services.dialogue.language)
    if budget is None and artifacts.fingerprint.startswith("upgrade-"):
        budget = Budget.FULL
    models = load_serving_models(settings, artifacts, budget)
    batcher = engine.make_batched_classifier(
        models.predictor, settings.batch_max_size, settings.batch_max_wait_ms
    )
    classify = engine.batched_classify(models.predictor, batcher)

    knowledge_base = open_knowledge_base(
        settings, models.embedder, models.embedder_id, models.search_mode
    )
    served: KnowledgeBase | KnowledgeBaseRouter = knowledge_base
    if isinstance(services.knowledge_base, KnowledgeBaseRouter):  # other languages unchanged
        served = KnowledgeBaseRouter(
            {**services.knowledge_base.bases, services.dialogue.language: knowledge_base}
        )
    services.kb_follower.switch(served)  # type: ignore[arg-type]
    old_batcher = services.batcher
    services.dialogue.intents = IntentModel(classify, models.predictor.labels, artifacts.threshold)
    services.dialogue.kb = knowledge_base
    services.knowledge_base = served  # type: ignore[assignment]
    services.batcher, services.intent = batcher, artifacts
    retire = threading.Timer(RETIRE_AFTER_S, old_batcher.close)
    retire.daemon = True
    retire.start()
