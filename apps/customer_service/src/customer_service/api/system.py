"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from customer_service.api.deps import RuntimeDep
from customer_service.pipelines import pipeline_details
from customer_service.runtime import AppRuntime
from keel_service import Readiness, Status, app_metrics, health_router


def readiness(request: Request) -> Readiness:
    """Ready once models and indexes are loaded; starting or failed (503) before."""
    runtime: AppRuntime = request.app.state.runtime
    services = runtime.services
    if services is None:
        if runtime.error:
            return Readiness(Status.FAILED, reasons=[runtime.error])
        return Readiness(Status.STARTING, reasons=["models are still loading"])
    return Readiness(
        Status.OK,
        details={
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
            "languages": {
                "served": services.dialogue.languages,
                **{p.language: pipeline_details(p) for p in services.other_languages},
            },
            "generation": services.details.get("generation", "off"),
            "load_seconds": services.load_seconds,
            # Tier, validation score and live-upgrade progress (keel_service.upgrade).
            "model": runtime.model_status(),
        },
    )


router = health_router(readiness)
metrics_router = APIRouter(tags=["system"])


@metrics_router.get("/metrics")
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus text format: the app's metrics and the HTTP metrics per route."""
    return app_metrics(request, runtime.metrics.registry, readiness)


router.include_router(metrics_router)
