"""Map the app's exceptions to HTTP responses (the only place that does)."""

from __future__ import annotations

from fastapi import FastAPI

from keel_service import install_error_handlers as install_shared_handlers
from keel_service import validation_detail as shared_validation_detail
from recommender.errors import (
    ArtifactMismatchError,
    DataFormatError,
    DuplicateItemError,
    ModelNotReadyError,
    RecommenderError,
    UnknownItemError,
)

_STATUS: list[tuple[type[Exception], int]] = [
    (DuplicateItemError, 422),
    (UnknownItemError, 422),
    (ModelNotReadyError, 503),
    (DataFormatError, 400),
    (ArtifactMismatchError, 500),
]


def validation_detail(field: str, message: str, kind: str = "value_error") -> list[dict]:
    """A FastAPI-style 422 ``detail`` entry naming a body field."""
    return shared_validation_detail(["body", field], message, kind)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers (the 422 format for request validation is keel_service's)."""
    install_shared_handlers(app, _STATUS, root=RecommenderError)
