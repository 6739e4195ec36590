"""``prepare``: train, compress and calibrate the intent model, and build the KB index.

Idempotent: the intent model is prepared once per fingerprint (the training files and
every option that changes the model) by ``keel.models.prepare_artifact`` under
``<state_dir>/models/intent/<hash>/`` (trained model, compressed model, ``intent.json``
with the calibration), published atomically; the knowledge base re-embeds only
documents whose content changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from customer_service import engine, manifests
from customer_service.config import Settings
from customer_service.documents import (
    ChangeReport,
    Document,
    iter_article_files,
    load_article,
    load_faq,
)
from customer_service.knowledge_base import KnowledgeBase
from customer_service.retriever_training import read_retriever_manifest
from keel_service import Budget

log = logging.getLogger(__name__)

RETRIEVAL_MODEL = "minilm"
INTENT_RECORD = "intent.json"


@dataclass
class IntentArtifacts:
    """What the server needs to serve the intent model."""

    model_dir: str
    threshold: float
    fingerprint: str
    labels: list[str]
    variant: str
    calibration: dict[str, float]
    validation_accuracy: float | None
    trained_seconds: float


def _hash_file(digest: Any, path: Path) -> None:
    digest.update(path.name.encode())
    digest.update(path.read_bytes())


def intent_fingerprint(settings: Settings) -> str:
    """Hash of the intent training inputs and options."""
    digest = hashlib.sha256()
    _hash_file(digest, settings.content_path("intents.csv"))
    oos = settings.content_path("out_of_scope.csv")
    if oos.is_file():
        _hash_file(digest, oos)
    options = {
        "budget": settings.budget.value,
        "epochs": settings.epochs,
        "compress": settings.compress,
        "max_accuracy_drop_points": settings.max_accuracy_drop_points,
        # How compress ranks the variants (engine.compress_intent_classifier): a model
        # prepared under the older throughput ranking is prepared again.
        "compress_speed": "latency",
        "max_train_rows": settings.max_train_rows,
        "oos_rejection_target": settings.oos_rejection_target,
        "columns": [settings.intent_text_column, settings.intent_label_column],
        "format": 1,
    }
    if settings.base_model != "minilm":  # unchanged fingerprints for the English models
        options["base_model"] = settings.base_model
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def intent_root(settings: Settings) -> Path:
    """Folder the intent model versions are prepared in."""
    return settings.models_dir / "intent"


def read_intent_manifest(settings: Settings) -> IntentArtifacts | None:
    """The prepared intent model, if the published one matches the current inputs."""
    from keel.models import fingerprint_hash, published_artifact

    folder = published_artifact(intent_root(settings))
    if folder is None or folder.name != fingerprint_hash(intent_fingerprint(settings)):
        return None
    record = manifests.read_json(folder / INTENT_RECORD)
    if record is None:
        return None
    artifacts = IntentArtifacts(**record)
    # Recorded relative to the version folder: it was built under a temporary name.
    artifacts.model_dir = str((folder / artifacts.model_dir).resolve())
    return artifacts if Path(artifacts.model_dir).is_dir() else None


def prepare_intent_model(
    settings: Settings, force: bool = False, report: Callable[[str], None] = print
) -> IntentArtifacts:
    """Train (or reuse) the intent model, compress it, calibrate its OOS threshold."""
    from keel.models import prepare_artifact

    cached = None if force else read_intent_manifest(settings)
    if cached is not None:
        report(f"intent model: cached ({cached.variant}, fingerprint {cached.fingerprint})")
        return cached
    fingerprint = intent_fingerprint(settings)
    # The first layout's manifest; its fingerprint folders are removed on publish.
    (intent_root(settings) / manifests.LEGACY_MANIFEST).unlink(missing_ok=True)

    def build(folder: Path) -> None:
        _build_intent_model(settings, fingerprint, folder, report)

    prepare_artifact(intent_root(settings), fingerprint, build, force=force)
    artifacts = read_intent_manifest(settings)
    if artifacts is None:  # pragma: no cover - prepare_artifact just published it
        raise RuntimeError(f"{intent_root(settings)}: the prepared intent model is missing")
    report(
        f"intent model: ready ({artifacts.variant}), validation accuracy "
        f"{artifacts.validation_accuracy:.3f}, OOS threshold {artifacts.threshold:.3f}"
    )
    return artifacts


def _build_intent_model(
    settings: Settings,
    fingerprint: str,
    work: Path,
    report: Callable[[str], None],
    candidate: CandidateRecipe | None = None,
) -> IntentArtifacts:
    """Train, compress and calibrate into ``work``; the record goes to ``intent.json``.

    ``candidate`` (the live upgrade, :mod:`customer_service.upgrade`): train with its
    budget and options, add its extra examples to the training and validation data
    and its out-of-scope texts to the calibration set.
    """
    started = time.perf_counter()
    data = engine.load_intent_data(
        settings.content_path("intents.csv"),
        settings.intent_text_column,
        settings.intent_label_column,
        settings.max_train_rows,
    )
    train, val = engine.split_validation(data)
    budget, epochs, learning_rate = settings.budget, settings.epochs, None
    if candidate is not None:
        train, val = candidate.extend(train, val)
        budget, epochs, learning_rate = candidate.budget, candidate.epochs, candidate.learning_rate
    report(
        f"intent model: training ({budget.value}) on {len(train)} utterances, "
        f"{len(data.label_set())} intents; {len(val)} held out for calibration"
    )
    trained_dir = engine.train_intent_classifier(
        train,
        val,
        budget,
        work / "trained",
        epochs,
        show_progress=candidate is None,
        learning_rate=learning_rate,
        base_model=settings.base_model,
    )
    serving_dir = trained_dir
    if settings.compress:
        report("intent model: compressing")
        serving_dir = engine.compress_intent_classifier(
            trained_dir,
            work / "serving",
            val,
            settings.max_accuracy_drop_points,
            settings.num_threads,
            log=report,
        )
    predictor = engine.load_model(serving_dir, num_threads=settings.num_threads)
    probabilities = predictor.classify(list(val.texts))
    labels = list(predictor.labels)
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, val.labels, strict=True)]))
    in_scores = probabilities.max(axis=1)
    oos_path = settings.content_path("out_of_scope.csv")
    calibration: dict[str, float] = {}
    extra_oos = list(candidate.out_of_scope) if candidate is not None else []
    if oos_path.is_file() or extra_oos:
        oos_texts = (engine.load_texts(oos_path) if oos_path.is_file() else []) + extra_oos
        oos_scores = predictor.classify(oos_texts).max(axis=1)
        calibration = engine.calibrate_oos_threshold(
            in_scores, oos_scores, settings.oos_rejection_target
        )
        threshold = float(calibration["threshold"])
    else:
        # No out-of-scope examples (e.g. Banking77): accept everything the model
        # predicts, the dialogue manager then relies on the clarify margin only.
        threshold = 0.0
    artifacts = IntentArtifacts(
        model_dir=str(serving_dir.relative_to(work)),
        threshold=threshold,
        fingerprint=fingerprint,
        labels=labels,
        variant=str(getattr(predictor, "variant", "unknown")),
        calibration=calibration,
        validation_accuracy=accuracy,
        trained_seconds=round(time.perf_counter() - started, 1),
    )
    manifests.write_json(work / INTENT_RECORD, asdict(artifacts))
    return artifacts


@dataclass
class CandidateRecipe:
    """How the live upgrade's candidate differs from ``prepare``'s model."""

    budget: Budget
    epochs: int | None = None
    learning_rate: float | None = None
    extra_train: list[tuple[str, str]] = field(default_factory=list)
    extra_validation: list[tuple[str, str]] = field(default_factory=list)
    out_of_scope: list[str] = field(default_factory=list)

    def extend(self, train: Any, val: Any) -> tuple[Any, Any]:
        """``train`` and ``val`` plus the extra examples whose label is a known intent."""
        from keel.data import LabelledTexts

        known = set(train.labels)

        def plus(data: Any, extra: list[tuple[str, str]]) -> Any:
            rows = [(t, label) for t, label in extra if label in known]
            if not rows:
                return data
            return LabelledTexts(
                list(data.texts) + [t for t, _ in rows],
                list(data.labels) + [label for _, label in rows],
                data.source,
            )

        return plus(train, self.extra_train), plus(val, self.extra_validation)


@dataclass
class ServingModels:
    """The loaded intent predictor and the embedder of the knowledge base."""

    predictor: Any
    embedder: Any
    embedder_id: str
    search_mode: str | None = None  # None: the retriever's default (hybrid)


def load_serving_models(
    settings: Settings,
    intent: IntentArtifacts,
    budget: Budget | None = None,
    lazy: bool = False,
) -> ServingModels:
    """Load the intent model; with the ``head`` budget its encoder is the frozen base
    encoder, so it also embeds the knowledge base and a /chat message needs one encoder
    pass (the predictor's per-text cache serves the second use). A retrieval encoder
    fine-tuned with ``train-retriever`` takes the knowledge base over when present.
    ``budget`` is the one ``intent`` was trained with (default: the setting's). With
    ``lazy``, each model loads on its first use beyond its ``dim``: ``prepare`` on a
    cached state opens the knowledge base without loading any."""
    load = engine.load_model_lazily if lazy else engine.load_model
    predictor = load(
        intent.model_dir, num_threads=settings.num_threads, cache_size=settings.cache_size
    )
    retriever = read_retriever_manifest(settings.models_dir)
    if retriever is not None:
        # A domain-adapted encoder from ``train-retriever`` embeds the knowledge base.
        embedder = load(
            retriever.model_dir, num_threads=settings.num_threads, cache_size=settings.cache_size
        )
        return ServingModels(
            predictor, embedder, f"retriever-{retriever.fingerprint}", retriever.search_mode
        )
    if (budget or settings.budget) is Budget.FAST:
        return ServingModels(predictor, predictor, f"intent-{intent.fingerprint}")
    base = settings.base_model or RETRIEVAL_MODEL
    embedder = load(base, num_threads=settings.num_threads, cache_size=settings.cache_size)
    return ServingModels(predictor, embedder, base)


def open_knowledge_base(
    settings: Settings, embedder: Any, embedder_id: str, search_mode: str | None = None
) -> KnowledgeBase:
    """The knowledge base of ``embedder`` in ``<state_dir>/kb/<embedder_id>``, searched in
    ``search_mode`` (``ServingModels.search_mode``: as chosen with ``train-retriever``).

    An index built with another embedder cannot be searched with this one: its folder
    is replaced, and the documents added through the admin API are carried over (the
    articles folder and FAQ are re-ingested by ``ingest_content``).
    """
    kb_root = settings.kb_dir
    directory = kb_root / embedder_id
    knowledge_base = KnowledgeBase(
        directory, engine.load_retriever(directory / "index", embedder, search_mode)
    )
    others = (
        [d for d in kb_root.iterdir() if d.is_dir() and d != directory] if kb_root.is_dir() else []
    )
    for old_dir in others:
        old_file = old_dir / "documents.json"
        if old_file.is_file() and len(knowledge_base) == 0:
            records = json.loads(old_file.read_text(encoding="utf-8"))
            admin_docs = [
                Document(**r["document"]) for r in records if r["document"]["source"] == "admin"
            ]
            if admin_docs:
                knowledge_base.upsert_documents(admin_docs)
                knowledge_base.save()
        shutil.rmtree(old_dir, ignore_errors=True)
    return knowledge_base


def load_content_documents(settings: Settings) -> list[Document]:
    """The documents of the configured articles folders and FAQ files of every language
    served (what the server seeds the shared database with); the Chinese help centre's
    ids start with ``zh-`` (:func:`languages.language_documents`).

    Raises:
        DocumentFormatError: a file cannot be read (names the file and line).
    """
    from customer_service.languages import language_documents, language_settings

    documents: list[Document] = []
    for language in settings.language_list:
        files = file_documents(language_settings(settings, language))
        documents += language_documents(files, language)
    return documents


def file_documents(settings: Settings) -> list[Document]:
    """The documents of ``settings``' articles folder and FAQ file, as read."""
    articles = settings.content_path("articles")
    faq = settings.content_path("faq.csv")
    documents: list[Document] = []
    if articles.is_dir():
        documents += [load_article(path, articles) for path in iter_article_files(articles)]
    if faq.is_file():
        documents += load_faq(faq)
    return documents


def ingest_content(
    knowledge_base: KnowledgeBase, settings: Settings, show_progress: bool = True
) -> ChangeReport:
    """Sync the knowledge base with the configured articles folder and FAQ file."""
    articles = settings.content_path("articles")
    faq = settings.content_path("faq.csv")
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(desc="knowledge base", unit="doc", leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        return knowledge_base.ingest(
            articles if articles.is_dir() else None,
            faq if faq.is_file() else None,
            progress,
        )
    finally:
        if bar is not None:
            bar.close()


@dataclass
class PrepareResult:
    intent: IntentArtifacts
    knowledge_base: ChangeReport
    passages: int
    seconds: float
    language: str = "en"
    others: dict[str, PrepareResult] = field(default_factory=dict)


def prepare(
    settings: Settings,
    force: bool = False,
    report: Callable[[str], None] = print,
    show_progress: bool = True,
) -> PrepareResult:
    """Prepare everything the server loads: intent model and knowledge-base index, for
    every language served (the result is the default language's; the others are in
    ``others``)."""
    from customer_service.languages import language_settings

    results = [
        _prepare_language(
            language_settings(settings, language), language, force, report, show_progress
        )
        for language in settings.language_list
    ]
    first = results[0]
    first.others = {r.language: r for r in results[1:]}
    return first


def _prepare_language(
    settings: Settings,
    language: str,
    force: bool,
    report: Callable[[str], None],
    show_progress: bool,
) -> PrepareResult:
    from customer_service.languages import language_documents

    started = time.perf_counter()
    if language != "en":
        report(f"language {language}: base model {settings.base_model}")
    intent = prepare_intent_model(settings, force=force, report=report)
    # Lazily: the encoders load only if a document is new or changed.
    models = load_serving_models(settings, intent, lazy=True)
    knowledge_base = open_knowledge_base(
        settings, models.embedder, models.embedder_id, models.search_mode
    )
    if language == "en":
        ingest = ingest_content(knowledge_base, settings, show_progress)
    else:
        # Ids with the language's prefix, as the server seeds them into the database.
        documents = language_documents(file_documents(settings), language)
        ingest = knowledge_base.apply_changes(documents, [])
    report(
        f"knowledge base: {len(knowledge_base)} documents, {knowledge_base.passage_count()} passages "
        f"(added {len(ingest.added)}, updated {len(ingest.updated)}, "
        f"unchanged {len(ingest.unchanged)}, removed {len(ingest.removed)})"
    )
    return PrepareResult(
        intent,
        ingest,
        knowledge_base.passage_count(),
        round(time.perf_counter() - started, 1),
        language,
    )
