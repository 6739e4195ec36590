"""Turning app and engine errors into HTTP responses (the only place this happens)."""

from __future__ import annotations

from fastapi import FastAPI, Request
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

_STATUS: list[tuple[type[Exception], int]] = [
    (SessionNotFoundError, 404),
    (MessageNotFoundError, 404),
    (DocumentNotFoundError, 404),
    (InvalidStateError, 409),
    (DocumentFormatError, 422),
    (NotReadyError, 503),
]


def _status_of(exc: Exception) -> int:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return 500


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    code = _status_of(exc)
    headers = {"Retry-After": "5"} if code == 503 else None
    return JSONResponse(status_code=code, content={"detail": str(exc)}, headers=headers)


async def _engine_error(_request: Request, exc: Exception) -> JSONResponse:
    from keel import DeadlineExceededError, QueueFullError

    if isinstance(exc, QueueFullError):
        return JSONResponse(
            status_code=503,
            content={"detail": "server busy, retry shortly"},
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, DeadlineExceededError):
        return JSONResponse(status_code=504, content={"detail": "the model did not answer in time"})
    return JSONResponse(status_code=500, content={"detail": f"model error: {type(exc).__name__}"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    from keel import KeelError

    app.add_exception_handler(CustomerServiceError, _app_error)
    app.add_exception_handler(KeelError, _engine_error)
