"""FastAPI application factory (``uvicorn finance_monitor.main:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from finance_monitor.api import (
    alerts,
    headlines,
    pages,
    rules,
    silences,
    stream,
    system,
    trends,
)
from finance_monitor.api.errors import install_error_handlers
from finance_monitor.config import ENV_PREFIX, Settings, get_settings
from finance_monitor.runtime import MonitorRuntime
from keel_service import NO_OPENTELEMETRY, configure_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: store opened now; models and stages start in the background on startup."""
    settings = settings or get_settings()
    from keel.models import set_offline_env

    set_offline_env()
    runtime = MonitorRuntime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Keel finance monitor",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    configure_app(app, settings, env_prefix=ENV_PREFIX)
    app.state.runtime = runtime
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    for module in (system, alerts, silences, rules, trends, stream, headlines, pages):
        app.include_router(module.router)
    static = resources.files("finance_monitor").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
