"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from customer_service.api.deps import RuntimeDep

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=None)
def healthz(runtime: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """200 with details once models and indexes are loaded; 503 while starting or failed."""
    services = runtime.services
    if services is None:
        state = "failed" if runtime.error else "starting"
        return JSONResponse(status_code=503, content={"status": state, "error": runtime.error})
    return {
        "status": "ok",
        "intent_model": {
            "variant": services.intent.variant,
            "labels": len(services.intent.labels),
            "threshold": round(services.intent.threshold, 4),
            "fingerprint": services.intent.fingerprint,
        },
        "knowledge_base": {
            "documents": len(services.knowledge_base),
            "passages": services.knowledge_base.passage_count(),
        },
        "generation": services.details.get("generation", "off"),
        "load_seconds": services.load_seconds,
    }


@router.get("/metrics")
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
