"""Closing the loop: the agents' review queue, intent corrections and their export.

Agents (agent or admin key) see the customer messages behind thumbs-down answers and
hand-offs, and correct their intent or mark them out of scope; the admin key exports
the corrections (CSV or JSON Lines) as versioned, PII-masked training data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from customer_service.api.deps import AdminKeyDep, AgentKeyDep, RuntimeDep, ServicesDep
from customer_service.api.schemas import MAX_ID, Text
from customer_service.corrections import (
    Correction,
    CorrectionStore,
    ReviewItem,
    export_corrections,
)
from customer_service.errors import InvalidStateError
from customer_service.feedback_loop import FeedbackLoop
from customer_service.runtime import Services

router = APIRouter(tags=["review"])

MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of a customer message")]


def get_corrections(services: ServicesDep) -> CorrectionStore:
    return CorrectionStore(services.store.engine, services.store.write_gate)


CorrectionsDep = Annotated[CorrectionStore, Depends(get_corrections)]


class CorrectionOut(BaseModel):
    message_id: int
    conversation_id: str
    text: str = Field(description="the customer's message, PII masked")
    intent: str | None = Field(description="the corrected intent; null when out of scope")
    out_of_scope: bool
    predicted_intent: str | None
    predicted_confidence: float | None
    reason: str | None = Field(description="thumbs_down, handoff, or null")
    agent: str | None
    updated_at: float
    version: int = Field(description="dataset version of this correction's last change")


class ReviewItemOut(BaseModel):
    message_id: int
    conversation_id: str
    text: str
    intent: str | None = Field(description="the bot's reading (top intent)")
    confidence: float | None
    reason: Literal["thumbs_down", "handoff"]
    answer_kind: str | None
    created_at: float
    correction: CorrectionOut | None


class ReviewOut(BaseModel):
    dataset_version: int
    intents: list[str] = Field(description="the intents a message can be corrected to")
    items: list[ReviewItemOut]


class CorrectionRequest(BaseModel):
    """Either ``intent`` or ``out_of_scope: true``."""

    intent: str | None = Field(default=None, min_length=1, max_length=128)
    out_of_scope: bool = False
    agent: Text | None = Field(default=None, min_length=1, max_length=64)


class CorrectionSaved(BaseModel):
    correction: CorrectionOut
    changed: bool = Field(description="false when the message already had this label")
    dataset_version: int


class CorrectionsOut(BaseModel):
    dataset_version: int
    corrections: list[CorrectionOut]


class DatasetVersion(BaseModel):
    dataset_version: int


def correction_out(correction: Correction) -> CorrectionOut:
    return CorrectionOut(
        message_id=correction.message_id,
        conversation_id=correction.conversation_id,
        text=correction.text,
        intent=correction.label,
        out_of_scope=correction.out_of_scope,
        predicted_intent=correction.predicted_intent,
        predicted_confidence=correction.predicted_confidence,
        reason=correction.reason,
        agent=correction.agent,
        updated_at=correction.updated_at,
        version=correction.version,
    )


def _review_out(item: ReviewItem) -> ReviewItemOut:
    return ReviewItemOut(
        message_id=item.message_id,
        conversation_id=item.conversation_id,
        text=item.text,
        intent=item.intent,
        confidence=item.confidence,
        reason=item.reason,  # type: ignore[arg-type]
        answer_kind=item.answer_kind,
        created_at=item.created_at,
        correction=correction_out(item.correction) if item.correction else None,
    )


def _intents(services: Services) -> list[str]:
    return sorted(services.intent.labels)


def _invalid(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}]
    )


@router.get("/agent/review", response_model=ReviewOut, dependencies=[AgentKeyDep])
def review_queue(
    services: ServicesDep,
    corrections: CorrectionsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    include_corrected: bool = False,
) -> ReviewOut:
    """Customer messages to review (newest first): those whose answer was rated down or
    handed the conversation over; corrected ones only with ``include_corrected``."""
    items = corrections.review_queue(limit=limit, include_corrected=include_corrected)
    return ReviewOut(
        dataset_version=corrections.version(),
        intents=_intents(services),
        items=[_review_out(i) for i in items],
    )


@router.put(
    "/agent/corrections/{message_id}", response_model=CorrectionSaved, dependencies=[AgentKeyDep]
)
def put_correction(
    message_id: MessageId,
    body: CorrectionRequest,
    services: ServicesDep,
    corrections: CorrectionsDep,
    runtime: RuntimeDep,
    request: Request,
) -> CorrectionSaved:
    """Give a customer message its right intent, or mark it out of scope (replaces an
    earlier correction of it; the same label again changes nothing)."""
    if body.out_of_scope and body.intent is not None:
        raise _invalid("intent", "give an intent or out_of_scope: true, not both", body.intent)
    if not body.out_of_scope and body.intent is None:
        raise _invalid("intent", "give an intent, or out_of_scope: true", None)
    known = _intents(services)
    if body.intent is not None and body.intent not in known:
        raise _invalid(
            "intent", f"unknown intent {body.intent!r}; known: {', '.join(known)}", body.intent
        )
    correction, changed = corrections.correct(message_id, body.intent, body.agent)
    if changed:
        runtime.metrics.corrections.labels(
            "out_of_scope" if correction.out_of_scope else "intent"
        ).inc()
        _corrections_changed(request)
    return CorrectionSaved(
        correction=correction_out(correction),
        changed=changed,
        dataset_version=correction.version if changed else corrections.version(),
    )


@router.delete(
    "/agent/corrections/{message_id}", response_model=DatasetVersion, dependencies=[AgentKeyDep]
)
def delete_correction(
    message_id: MessageId, corrections: CorrectionsDep, request: Request
) -> DatasetVersion:
    """Withdraw a correction (404 when the message has none)."""
    version = corrections.delete(message_id)
    _corrections_changed(request)
    return DatasetVersion(dataset_version=version)


@router.get("/agent/corrections", response_model=CorrectionsOut, dependencies=[AgentKeyDep])
def list_corrections(corrections: CorrectionsDep) -> CorrectionsOut:
    """Every live correction, oldest first, with the dataset version."""
    version, rows = corrections.corrections()
    return CorrectionsOut(dataset_version=version, corrections=[correction_out(c) for c in rows])


@router.get("/admin/corrections/export", dependencies=[AdminKeyDep])
def export(
    corrections: CorrectionsDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "jsonl",
) -> StreamingResponse:
    """The corrections as labelled training data (``text,label``; out-of-scope rows are
    labelled ``out_of_scope``), PII masked; the dataset version is in ``X-Dataset-Version``."""
    version, rows = corrections.corrections()
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        export_corrections(rows, format),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="corrections-v{version}.{format}"',
            "X-Dataset-Version": str(version),
        },
    )


@router.post("/admin/corrections/retrain", status_code=202, dependencies=[AdminKeyDep])
def retrain_on_corrections(
    corrections: CorrectionsDep, runtime: RuntimeDep, request: Request
) -> dict[str, Any]:
    """Start a live-upgrade run on the current corrections now (it trains in the
    background and swaps the new model in only when it scores higher on validation;
    follow it on ``/healthz``). 409 when the live upgrade is off."""
    loop: FeedbackLoop = request.app.state.feedback_loop
    if not loop.retrain():
        raise InvalidStateError(
            "the live upgrade is off: set KEEL_CS_UPGRADE=true (fast budget) to retrain "
            "on corrections, or export them and run prepare"
        )
    return {"requested": True, "dataset_version": corrections.version()}


def _corrections_changed(request: Request) -> None:
    """Count a change for the background upgrade (a run every few changes)."""
    loop: FeedbackLoop | None = getattr(request.app.state, "feedback_loop", None)
    if loop is not None:
        loop.changed()
