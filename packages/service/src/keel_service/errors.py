"""Errors of the service layer and the one place that maps errors to HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("keel_service")


class ServiceError(Exception):
    """Root of ``keel_service``'s own errors."""


class InsecureConfigError(ServiceError):
    """The app was asked to serve with a missing or default key."""


def validation_detail(
    loc: Sequence[str | int], message: str, kind: str = "value_error"
) -> list[dict[str, Any]]:
    """One FastAPI-style 422 ``detail`` entry (``loc`` names the field)."""
    return [{"loc": list(loc), "msg": message, "type": kind}]


def install_error_handlers(
    app: FastAPI,
    statuses: Sequence[tuple[type[Exception], int]],
    root: type[Exception],
) -> None:
    """Map an app's exceptions and the engine's to HTTP responses.

    Args:
        app: the FastAPI application.
        statuses: ``(exception type, status)`` pairs, most specific first; an exception
            under ``root`` that matches none is a 400.
        root: the app's root exception.

    A 4xx carries the exception's message (it is about the caller's input). A 5xx never
    carries exception text: it is logged, and the client gets a fixed message.
    """
    table = list(statuses)

    async def _app_error(request: Request, exc: Exception) -> JSONResponse:
        code = next((status for kind, status in table if isinstance(exc, kind)), 400)
        if code >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
            headers = {"Retry-After": "5"} if code == 503 else None
            return JSONResponse(
                status_code=code, content={"detail": _public_5xx(code)}, headers=headers
            )
        return JSONResponse(status_code=code, content={"detail": str(exc)})

    async def _engine_error(request: Request, exc: Exception) -> JSONResponse:
        from keel import DeadlineExceededError, QueueFullError

        if isinstance(exc, QueueFullError):
            return JSONResponse(
                status_code=503,
                content={"detail": "server busy, retry shortly"},
                headers={"Retry-After": "1"},
            )
        if isinstance(exc, DeadlineExceededError):
            return JSONResponse(
                status_code=504, content={"detail": "the model did not answer in time"}
            )
        log.error("%s %s: model error: %r", request.method, request.url.path, exc)
        return JSONResponse(status_code=500, content={"detail": "model error"})

    from keel import KeelError

    app.add_exception_handler(root, _app_error)
    app.add_exception_handler(KeelError, _engine_error)


def _public_5xx(code: int) -> str:
    if code == 503:
        return "service not ready, retry shortly"
    if code == 504:
        return "timed out"
    return "internal error (logged on the server)"
