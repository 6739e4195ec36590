"""Admin endpoints (API key): knowledge-base documents, reindex, retrain, export, analytics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from customer_service.analytics import conversation_analytics
from customer_service.api.deps import AdminKeyDep, ServicesDep
from customer_service.api.schemas import DocumentIn, DocumentOut, DocumentStatus
from customer_service.documents import Document, document_url, normalise_text, parse_article
from customer_service.errors import DocumentFormatError
from customer_service.export import export_training_records
from customer_service.prepare import load_content_documents

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminKeyDep])

DocId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9\-]{0,99}$", description="slug")]


@router.get("/documents", response_model=list[DocumentOut])
def list_documents(services: ServicesDep) -> list[DocumentOut]:
    return [
        DocumentOut(doc_id=d.doc_id, title=d.title, url=d.url, source=d.source, format=d.format)
        for d in services.knowledge_base.documents()
    ]


@router.put("/documents/{doc_id}", response_model=DocumentStatus)
def put_document(doc_id: DocId, body: DocumentIn, services: ServicesDep) -> DocumentStatus:
    """Add or replace a document; an unchanged document is not re-embedded."""
    if body.format == "text":
        # The title comes in its own field, so the first line is body text.
        parsed_title, text = body.title, normalise_text(body.text)
    else:
        parsed_title, text = parse_article(body.text, body.format)
    if not text:
        raise DocumentFormatError(f"document {doc_id!r} has no text after parsing")
    document = Document(
        doc_id=doc_id,
        title=body.title or parsed_title,
        text=text,
        url=body.url or document_url(doc_id),
        source="admin",
        format=body.format,
    )
    # The shared database first (every replica follows it), then this replica's index.
    outcome = services.documents.put(document)
    services.kb_follower.poll()
    passages = len(services.knowledge_base.passage_ids(doc_id))
    return DocumentStatus(doc_id=doc_id, status=outcome, passages=passages)


@router.get("/search")
def search(
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="query")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[dict[str, Any]]:
    """The knowledge base's best passages for a query (what retrieval answers are built from)."""
    return [asdict(hit) for hit in services.knowledge_base.search(q, k=k)]


@router.delete("/documents/{doc_id}", status_code=204)
def delete_document(doc_id: DocId, services: ServicesDep) -> None:
    """Delete a document on every replica (404 if there is none)."""
    services.documents.delete(doc_id)
    services.kb_follower.poll()


@router.post("/reindex")
def reindex(services: ServicesDep) -> dict[str, Any]:
    """Re-read the articles folder and FAQ file into the shared knowledge base (unchanged
    documents do no work; every replica picks the changes up)."""
    report = services.kb_follower.seed(load_content_documents(services.settings), force=True)
    return {**report.as_dict(), "passages": services.knowledge_base.passage_count()}


@router.post("/retrain")
def retrain(services: ServicesDep) -> dict[str, Any]:
    """Retrain the intent model from the intents file (cached when nothing changed) and swap it in."""
    from customer_service.runtime import reload_intent_model

    artifacts = reload_intent_model(services)
    return {
        "fingerprint": artifacts.fingerprint,
        "variant": artifacts.variant,
        "threshold": artifacts.threshold,
        "validation_accuracy": artifacts.validation_accuracy,
        "labels": len(artifacts.labels),
    }


@router.get("/export")
def export(services: ServicesDep) -> StreamingResponse:
    """Conversations and feedback as JSON Lines training data (PII masked)."""

    def lines() -> Iterator[str]:
        for record in export_training_records(services.store):
            yield json.dumps(record, ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="conversations.jsonl"'},
    )


@router.get("/analytics")
def analytics(
    services: ServicesDep,
    window_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24 * 7,
    bucket_minutes: Annotated[int, Query(ge=1, le=24 * 60 * 31)] = 60,
) -> dict[str, Any]:
    """Intents over time, fallback rate, hand-off rate and answer feedback."""
    return conversation_analytics(services.store, window_hours * 3600, bucket_minutes * 60)
