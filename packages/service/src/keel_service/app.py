"""Wiring the shared plumbing into an app, and running it under uvicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry, Gauge

from keel_service.errors import install_validation_handler
from keel_service.health import Readiness
from keel_service.limits import ClientIdentifier
from keel_service.observability import configure_logging, install_observability, metrics_response
from keel_service.settings import ServiceSettings
from keel_service.upgrade import update_model_gauges

#: ``FastAPI(telemetry=...)`` for every Keel app: FastAPI's native OpenTelemetry hooks
#: off. Keel's metrics are Prometheus (``keel_service.observability``); with the hooks on,
#: FastAPI looks up three OpenTelemetry providers (environment reads included) on every
#: request even when none is configured.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def configure_app(app: FastAPI, settings: ServiceSettings, *, env_prefix: str) -> None:
    """Check the keys, then install logging, the key ring, the client identifier, request
    ids with HTTP metrics and the body limit (one middleware, outside every route, so
    nothing reads a large body).

    Raises:
        InsecureConfigError: a missing or default key (the message says how to set one).
    """
    settings.check_keys(env_prefix)
    configure_logging(settings.json_logs)
    install_validation_handler(app)
    app.state.keyring = settings.keyring()
    app.state.client_id = ClientIdentifier(settings.trusted_proxy_header, settings.trusted_proxies)
    app.state.http_registry = CollectorRegistry()
    app.state.ready_gauge = Gauge(
        "keel_ready",
        "1 when /readyz answers 200 (ok), 0 when starting, degraded or failed",
        registry=app.state.http_registry,
        multiprocess_mode="min",
    )
    # One middleware layer: request ids, metrics, the access log and the body limit.
    install_observability(app, app.state.http_registry, max_body_bytes=settings.max_body_bytes)


def app_metrics(
    request: Request,
    registry: CollectorRegistry | None,
    readiness: Callable[[Request], Readiness] | None = None,
) -> Response:
    """``/metrics`` body: the app's own registry plus the shared HTTP metrics, with
    ``keel_ready`` refreshed from ``readiness`` (the app's readiness check)."""
    app = request.app
    if readiness is not None and hasattr(app.state, "ready_gauge"):
        check = readiness(request)
        app.state.ready_gauge.set(1 if check.ready else 0)
        update_model_gauges(app.state, check.details.get("model"))
    registries = [r for r in (registry, getattr(app.state, "http_registry", None)) if r]
    return metrics_response(*registries)


def serve(prog: str, build: Callable[[], Any], settings: ServiceSettings, **kwargs: Any) -> int:
    """A CLI's ``serve``: build the app (``build``), then run it; a missing or default key
    is a one-line message naming the variable (exit code 2), not a traceback."""
    from keel_service.errors import InsecureConfigError

    try:
        app = build()
    except InsecureConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    run_server(app, settings, **kwargs)
    return 0


def run_server(app: Any, settings: ServiceSettings, *, host: str, port: int, **kwargs: Any) -> None:
    """``uvicorn.run`` with the settings' graceful-shutdown timeout.

    ``app`` is an application or an import string (``factory=True`` for a factory).
    """
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        log_level=kwargs.pop("log_level", "info"),
        **kwargs,
    )
