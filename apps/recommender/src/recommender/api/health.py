"""Liveness, readiness (``/livez``, ``/readyz``, ``/healthz``) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel_service import Readiness, Status, app_metrics, health_router


def readiness(request: Request) -> Readiness:
    """Ready once models and catalogue are loaded; starting or failed (503) before."""
    service = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        error = getattr(request.app.state, "startup_error", None)
        if error:
            return Readiness(Status.FAILED, reasons=[error])
        return Readiness(Status.STARTING, reasons=["models are still loading"])
    return Readiness(
        Status.OK,
        details={
            "items": len(service.catalogue.snapshot),
            "serving_model": service.manifest.get("serving_model"),
            "encoder": service.encoder_choice.as_dict() if service.encoder_choice else None,
            # Static table or transformer (prepare's choice, reason, validation lifts).
            "encoder_choice": service.manifest.get("encoder_choice"),
            "buckets": service.settings.bucket_configs,
            "events": service.events.count(),
            # Tier, validation score and live-upgrade progress (keel_service.upgrade).
            "model": service.model_status(),
        },
    )


router = health_router(readiness)
_metrics = APIRouter(tags=["system"])


@_metrics.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    service = getattr(request.app.state, "service", None)
    registry = service.metrics.registry if service is not None else None
    return app_metrics(request, registry, readiness)


router.include_router(_metrics)
