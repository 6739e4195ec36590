"""Map the app's exceptions to HTTP responses (the only place that does)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recommender.errors import (
    ArtifactMismatchError,
    DataFormatError,
    ModelNotReadyError,
    RecommenderError,
    UnknownItemError,
)


def validation_detail(field: str, message: str, kind: str = "value_error") -> list[dict]:
    """A FastAPI-style 422 ``detail`` entry naming a body field."""
    return [{"loc": ["body", field], "msg": message, "type": kind}]


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for :class:`RecommenderError` and its subclasses."""

    @app.exception_handler(UnknownItemError)
    async def _unknown(_: Request, exc: UnknownItemError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": validation_detail(exc.field, str(exc), "unknown_item")},
        )

    @app.exception_handler(ModelNotReadyError)
    async def _not_ready(_: Request, exc: ModelNotReadyError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(DataFormatError)
    async def _data(_: Request, exc: DataFormatError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(ArtifactMismatchError)
    async def _mismatch(_: Request, exc: ArtifactMismatchError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.exception_handler(RecommenderError)
    async def _other(_: Request, exc: RecommenderError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})
