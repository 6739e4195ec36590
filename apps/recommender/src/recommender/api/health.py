"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Ready when models and catalogue are loaded")
def healthz(request: Request) -> JSONResponse:
    """200 with details once ready; 503 while preparing or after a failed start."""
    service = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        error = getattr(request.app.state, "startup_error", None)
        return JSONResponse(
            status_code=503,
            content={"status": "error" if error else "starting", "error": error},
        )
    return JSONResponse(
        {
            "status": "ok",
            "items": len(service.catalogue.snapshot),
            "serving_model": service.manifest.get("serving_model"),
            "buckets": service.settings.bucket_configs,
            "events": service.events.count(),
        }
    )


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    service = getattr(request.app.state, "service", None)
    body = generate_latest(service.metrics.registry) if service is not None else b""
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
