"""Turning app and engine errors into HTTP responses (the only place this happens)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from customer_service.errors import (
    CustomerServiceError,
    DocumentFormatError,
    DocumentNotFoundError,
    InvalidStateError,
    MessageNotFoundError,
    NotReadyError,
    SessionNotFoundError,
)
from keel_service import install_error_handlers as install_shared_handlers

_STATUS: list[tuple[type[Exception], int]] = [
    (SessionNotFoundError, 404),
    (MessageNotFoundError, 404),
    (DocumentNotFoundError, 404),
    (InvalidStateError, 409),
    (DocumentFormatError, 422),
    (NotReadyError, 503),
]


log = logging.getLogger(__name__)

# Longest echo of a rejected input in a 422 (an input can be a 200 000-character text).
_MAX_ECHO = 200


def printable(value: Any) -> Any:
    """``value`` made safe to send as UTF-8 JSON: lone surrogates become ``\\udXXX``
    escapes, non-finite floats strings, and long strings are cut (nested values too)."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
    if isinstance(value, dict):
        return {printable(str(k)): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    return value


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes the input, and an input holding a lone surrogate
    # cannot be encoded as UTF-8: that turned the 422 into a 500.
    detail = []
    for error in exc.errors():
        entry = {key: error[key] for key in ("type", "loc", "msg", "input") if key in error}
        if "ctx" in error:
            entry["ctx"] = {key: str(value) for key, value in error["ctx"].items()}
        detail.append(entry)
    return JSONResponse(status_code=422, content={"detail": printable(jsonable_encoder(detail))})


async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
    # SQLite "database is locked" past the busy timeout, or PostgreSQL unreachable:
    # the request did nothing (its transaction rolled back), so it can be retried.
    log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "database busy or unavailable, retry shortly"},
        headers={"Retry-After": "2"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    install_shared_handlers(app, _STATUS, root=CustomerServiceError)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(sa.exc.OperationalError, _database_busy)
