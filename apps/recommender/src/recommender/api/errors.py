"""Map the app's exceptions to HTTP responses (the only place that does)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recommender.errors import (
    ArtifactMismatchError,
    DataFormatError,
    DuplicateItemError,
    ModelNotReadyError,
    RecommenderError,
    UnknownItemError,
)


def validation_detail(field: str, message: str, kind: str = "value_error") -> list[dict]:
    """A FastAPI-style 422 ``detail`` entry naming a body field."""
    return [{"loc": ["body", field], "msg": message, "type": kind}]


#: Longest echo of a rejected input in a 422 (the input can be a whole list).
_MAX_ECHO = 200


def printable(value: Any) -> Any:
    """``value`` made safe to send as UTF-8 JSON: lone surrogates become ``\\udXXX``
    escapes and long strings are cut, in nested lists and dicts too."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
    if isinstance(value, dict):
        return {printable(str(k)): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for request validation and :class:`RecommenderError` and its
    subclasses."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default handler echoes the input, and an input holding a lone
        # surrogate or NaN cannot be encoded as JSON: that turned a 422 into a 500.
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

    @app.exception_handler(DuplicateItemError)
    async def _duplicate(_: Request, exc: DuplicateItemError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": validation_detail(exc.field, str(exc), "duplicate_id")},
        )

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
