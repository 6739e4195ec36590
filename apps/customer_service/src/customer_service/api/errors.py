"""Turning app and engine errors into HTTP responses (the only place this happens)."""

from __future__ import annotations

from fastapi import FastAPI

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


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (the 422 format and database-unavailable 503s
    come from keel_service)."""
    install_shared_handlers(app, _STATUS, root=CustomerServiceError)
