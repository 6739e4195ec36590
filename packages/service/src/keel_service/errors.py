"""Errors of the service layer and the one place that maps errors to HTTP responses."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


#: Longest echo of a rejected input in a 422 (the input can be a whole list).
MAX_ECHO_CHARS = 200


def printable(value: Any) -> Any:
    """``value`` made safe to send as UTF-8 JSON: lone surrogates become ``\\udXXX``
    escapes, NaN and infinities become strings and long strings are cut, in nested
    lists and dicts too."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."
    if isinstance(value, dict):
        return {printable(str(k)): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return "NaN"
    if isinstance(value, float) and value in (math.inf, -math.inf):
        return str(value)
    return value


def install_validation_handler(app: FastAPI) -> None:
    """The one 422 format: FastAPI's ``detail`` list (``loc``, ``msg``, ``type``, a cut
    ``input``), encodable whatever the input held.

    FastAPI's default handler echoes the input, and an input holding a lone surrogate
    or NaN cannot be encoded as JSON: that turned a 422 into a 500.
    """

    async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = []
        for err in exc.errors():
            entry = {k: err[k] for k in ("loc", "msg", "type") if k in err}
            if "input" in err:
                entry["input"] = err["input"]
            if "ctx" in err:
                entry["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
            detail.append(entry)
        return JSONResponse(
            status_code=422, content={"detail": printable(jsonable_encoder(detail))}
        )

    app.add_exception_handler(RequestValidationError, _invalid)


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

    A 4xx carries the exception's message (it is about the caller's input); a 422 for an
    exception with a ``field`` attribute (and optionally ``kind``) uses the 422 format,
    naming ``body.<field>``. A 5xx never carries exception text: it is logged, and the
    client gets a fixed message.
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
        field = getattr(exc, "field", None)
        if code == 422 and isinstance(field, str):
            kind = getattr(exc, "kind", "value_error")
            detail = validation_detail(["body", *field.split(".")], str(exc), kind)
            return JSONResponse(status_code=422, content={"detail": printable(detail)})
        return JSONResponse(status_code=code, content={"detail": printable(str(exc))})

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

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # SQLite "database is locked" past the busy timeout, or PostgreSQL unreachable:
        # the request's transaction rolled back, so the client can simply retry.
        log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse(
            status_code=503,
            content={"detail": "database busy or unavailable, retry shortly"},
            headers={"Retry-After": "2"},
        )

    import sqlalchemy as sa

    from keel import KeelError

    app.add_exception_handler(root, _app_error)
    app.add_exception_handler(KeelError, _engine_error)
    app.add_exception_handler(sa.exc.OperationalError, _database_unavailable)


def _public_5xx(code: int) -> str:
    if code == 503:
        return "service not ready, retry shortly"
    if code == 504:
        return "timed out"
    return "internal error (logged on the server)"
