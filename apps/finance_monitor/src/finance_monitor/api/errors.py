"""Domain errors -> HTTP responses (the only place that happens)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from finance_monitor.errors import FinanceMonitorError, NotFoundError, RuleConfigError


def install_error_handlers(app: FastAPI) -> None:
    """404 for missing things, 422 naming the field for bad rules/silences."""

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(RuleConfigError)
    async def _bad_config(_: Request, exc: RuleConfigError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "detail": [
                    {
                        "loc": ["body", *exc.field.split(".")],
                        "msg": exc.reason,
                        "input": repr(exc.value),
                    }
                ]
            },
        )

    @app.exception_handler(FinanceMonitorError)
    async def _other(_: Request, exc: FinanceMonitorError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})
