"""Several languages in one app: a pipeline per language and one knowledge-base view.

The database holds one knowledge base (every replica follows it); each language has its
own index, embedded by its own encoder. :class:`KnowledgeBaseRouter` is what the
follower, the admin API and the article pages see: it sends each document to the index
of its language (:func:`languages.document_language`) and each search to the index of
the query's language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from customer_service import engine
from customer_service.config import Settings
from customer_service.documents import ChangeReport, Document
from customer_service.errors import DocumentNotFoundError
from customer_service.intents import IntentModel
from customer_service.knowledge_base import KnowledgeBase, RetrievedPassage
from customer_service.languages import (
    LanguagePipeline,
    choose_language,
    document_language,
    language_settings,
)
from customer_service.prepare import (
    load_serving_models,
    open_knowledge_base,
    prepare_intent_model,
)
from customer_service.templates import TemplateBook

log = logging.getLogger(__name__)


class KnowledgeBaseRouter:
    """The knowledge bases of several languages behind the interface of one.

    Args:
        bases: language -> knowledge base, the default language first.
    """

    def __init__(self, bases: dict[str, KnowledgeBase]) -> None:
        if not bases:
            raise ValueError("no knowledge base")
        self.bases = dict(bases)

    @property
    def languages(self) -> list[str]:
        return list(self.bases)

    def replace(self, language: str, knowledge_base: KnowledgeBase) -> None:
        """Serve ``knowledge_base`` for ``language`` (a new encoder's index)."""
        self.bases[language] = knowledge_base

    def language_of(self, document: Document) -> str:
        return document_language(document.doc_id, document.title, document.text, self.languages)

    def __len__(self) -> int:
        return sum(len(kb) for kb in self.bases.values())

    def passage_count(self) -> int:
        return sum(kb.passage_count() for kb in self.bases.values())

    def documents(self) -> list[Document]:
        """All documents of every language, sorted by id."""
        return sorted(
            (d for kb in self.bases.values() for d in kb.documents()), key=lambda d: d.doc_id
        )

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id`` in whichever language holds it.

        Raises:
            DocumentNotFoundError: no such document.
        """
        for kb in self.bases.values():
            try:
                return kb.get(doc_id)
            except DocumentNotFoundError:
                continue
        raise DocumentNotFoundError(f"no document {doc_id!r}")

    def passage_ids(self, doc_id: str) -> list[str]:
        for kb in self.bases.values():
            ids = kb.passage_ids(doc_id)
            if ids:
                return ids
        return []

    def search(self, query: str, k: int = 3) -> list[RetrievedPassage]:
        """The best passages of the knowledge base of the query's language."""
        language = choose_language(query, self.languages)
        return self.bases[language].search(query, k=k)

    def apply_changes(
        self, upserted: list[Document], deleted: list[str], *, complete: bool = False
    ) -> ChangeReport:
        """Apply database changes, each document to the index of its language; a document
        whose language changed (an admin rewrote it) leaves the other index."""
        report = ChangeReport()
        by_language: dict[str, list[Document]] = {language: [] for language in self.bases}
        for document in upserted:
            by_language[self.language_of(document)].append(document)
        for language, kb in self.bases.items():
            moved = [
                d.doc_id for other, docs in by_language.items() if other != language for d in docs
            ]
            # Unknown ids are ignored by each index (the document lives in another).
            part = kb.apply_changes(by_language[language], [*deleted, *moved], complete=complete)
            report.added += part.added
            report.updated += part.updated
            report.unchanged += part.unchanged
            report.removed += [d for d in part.removed if d not in moved]
        return report

    def save(self) -> None:
        for kb in self.bases.values():
            kb.save()


def build_pipeline(
    settings: Settings, language: str, report: Callable[[str], None] = log.info
) -> LanguagePipeline:
    """Prepare (or load the cached) intent model and index of ``language`` and wire its
    pipeline; its knowledge base is filled by the follower from the database."""
    from customer_service.dialogue import BOT_TEXTS

    own = language_settings(settings, language)
    artifacts = prepare_intent_model(own, report=report)
    models = load_serving_models(own, artifacts)
    batcher = engine.make_batched_classifier(
        models.predictor, settings.batch_max_size, settings.batch_max_wait_ms
    )
    classify = engine.batched_classify(models.predictor, batcher)

    knowledge_base = open_knowledge_base(
        own, models.embedder, models.embedder_id, models.search_mode
    )
    return LanguagePipeline(
        language=language,
        intents=IntentModel(classify, models.predictor.labels, artifacts.threshold),
        kb=knowledge_base,
        templates=TemplateBook.load(own.content_path("templates.yaml"), language),
        texts=BOT_TEXTS[language],
        batcher=batcher,
        intent_artifacts=artifacts,
    )


def pipeline_details(pipeline: LanguagePipeline) -> dict[str, Any]:
    """What ``/healthz`` says about a language's pipeline."""
    artifacts = pipeline.intent_artifacts
    return {
        "intent_model": None
        if artifacts is None
        else {
            "variant": artifacts.variant,
            "labels": len(artifacts.labels),
            "threshold": round(artifacts.threshold, 4),
            "fingerprint": artifacts.fingerprint,
        },
        "knowledge_base": {
            "documents": len(pipeline.kb),
            "passages": pipeline.kb.passage_count(),
        },
    }
