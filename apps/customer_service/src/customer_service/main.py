"""``create_app()``: the FastAPI application (``uvicorn customer_service.main:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from customer_service import __version__
from customer_service.api import admin, agent, chat, pages, review, system
from customer_service.api.errors import install_error_handlers
from customer_service.config import ENV_PREFIX, Settings, get_settings
from customer_service.feedback_loop import FeedbackLoop
from customer_service.runtime import AppRuntime
from keel_service import NO_OPENTELEMETRY, configure_app


def create_app(settings: Settings | None = None, background_start: bool = True) -> FastAPI:
    """Build the app; models load (and are prepared if missing) on start-up.

    Args:
        settings: defaults to ``get_settings()`` (``KEEL_CS_*`` environment variables).
        background_start: load models on a thread so ``/healthz`` answers "starting"
            meanwhile; ``False`` blocks start-up until ready (in-process test clients).
    """
    settings = settings or get_settings()
    runtime = AppRuntime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start(background=background_start)
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="Keel customer-service bot",
        version=__version__,
        description="Intent detection, knowledge-base answers with citations, hand-off to humans.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    configure_app(app, settings, env_prefix=ENV_PREFIX)
    app.state.runtime = runtime
    # Agents' corrections feed the live upgrade (customer_service.feedback_loop).
    app.state.feedback_loop = FeedbackLoop(runtime)
    install_error_handlers(app)
    for module in (system, chat, agent, review, admin, pages):
        app.include_router(module.router)
    chat.install_fast_path(app)
    static_dir = resources.files("customer_service").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    return app
