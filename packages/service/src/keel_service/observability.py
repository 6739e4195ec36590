"""Request ids, one JSON log line per request, and Prometheus HTTP metrics per route.

The metrics work with several uvicorn workers: when ``PROMETHEUS_MULTIPROC_DIR`` is set
(before the workers start), every process writes its samples there and ``/metrics``
adds them up with prometheus_client's ``MultiProcessCollector``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel_service.limits import limited_receive, refuse_too_large

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("keel.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(json_logs: bool, level: int = logging.INFO) -> None:
    """Root logging: JSON lines (``json_logs``) or the readable text format."""
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._keel = True  # type: ignore[attr-defined]  # ours: replaced on the next call
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_keel", False)]
    root.addHandler(handler)
    root.setLevel(level)


class HttpMetrics:
    """``http_requests_total`` and ``http_request_duration_seconds`` by route template."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class RequestContextMiddleware:
    """Gives every request an id (kept from ``X-Request-ID`` when sane), returns it in the
    response, counts it in the HTTP metrics and logs one line: route, status, latency, id.

    With ``max_body_bytes`` it also refuses bodies over that size with 413 before anything
    parses them, as :class:`keel_service.limits.BodySizeLimitMiddleware` does: a
    ``Content-Length`` over the limit at once, a chunked body when it passes the limit.
    One pure-ASGI layer for both, one scan of the headers: every middleware layer costs
    CPU on every request.
    """

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics, max_body_bytes: int | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, declared = _request_headers(scope)
        request_id = incoming or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        limit = self.max_body_bytes
        try:
            if limit is None:
                await self.app(scope, receive, send_with_id)
            elif declared is not None and declared > limit:
                await refuse_too_large(limit, scope, receive, send_with_id)
            else:
                await self.app(scope, limited_receive(receive, limit), send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )


def _request_headers(scope: Scope) -> tuple[str | None, int | None]:
    """The request's ``X-Request-ID`` (None when missing or not sane) and its
    ``Content-Length`` (None when missing or not a number), in one pass."""
    request_id: str | None = None
    length: int | None = None
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            request_id = text if _VALID_ID.match(text) else None
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
    return request_id, length


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label values), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


def install_observability(
    app: FastAPI, registry: CollectorRegistry, *, max_body_bytes: int | None = None
) -> HttpMetrics:
    """Add the request-context middleware, with its metrics in ``registry`` (and the body
    limit, when ``max_body_bytes`` is given)."""
    metrics = HttpMetrics(registry)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=max_body_bytes)
    app.state.http_metrics = metrics
    return metrics


def metrics_response(*registries: CollectorRegistry) -> Response:
    """Prometheus text of ``registries``; every worker's samples in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return Response(generate_latest(merged), media_type=CONTENT_TYPE_LATEST)
    body = b"".join(generate_latest(registry) for registry in registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
