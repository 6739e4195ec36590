"""``create_app()``: the FastAPI application (``uvicorn recommender.main:create_app --factory``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from keel_service import NO_OPENTELEMETRY, PeriodicJob, configure_app, public_error
from keel_service.heap import freeze_startup_heap
from recommender.api import catalogue, events, health, model, pages, ranking, users
from recommender.api.errors import install_error_handlers
from recommender.config import ENV_PREFIX, Settings, get_settings
from recommender.service import RecommenderService

log = logging.getLogger(__name__)


def _start_service(app: FastAPI, settings: Settings) -> None:
    """Prepare (if needed) and load the service; runs in a thread so /healthz answers."""
    service: RecommenderService | None = None
    try:
        service = RecommenderService.start(settings)
        # Counts other processes' events and applies the retention settings.
        app.state.maintenance = PeriodicJob(
            "rec-maintenance", settings.retention_interval_s, service.run_maintenance
        )
        app.state.maintenance.start()
        # The live upgrade (``upgrade`` setting): build the production model in the
        # background and swap it in when it ranks better (recommender.upgrade). Started
        # before the app reports ready, as in the other apps, so /healthz never shows the
        # upgrade "off" in the moment between readiness and the upgrade's start.
        service.start_upgrade()
        app.state.service = service
        log.info("recommender ready: %d items", len(service.catalogue.snapshot))
        freeze_startup_heap()
    except Exception as exc:  # reported on /healthz (type only) and in the log
        log.exception("recommender failed to start")
        app.state.startup_error = public_error("start-up failed", exc)
        if service is not None and app.state.service is None:
            service.close()  # never published: the app's shutdown would not close it


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; models load in the background and ``/healthz`` turns 200 when ready.

    Args:
        settings: explicit settings (default: ``get_settings()`` from the environment).
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.service = None
        app.state.startup_error = None
        app.state.maintenance = None
        loader = threading.Thread(target=_start_service, args=(app, settings), daemon=True)
        loader.start()
        yield
        loader.join(timeout=1)
        if app.state.maintenance is not None:
            app.state.maintenance.stop()
        if app.state.service is not None:
            app.state.service.close()

    app = FastAPI(
        title="Keel recommender",
        description="Text-semantic recommendation reranker built on the Keel engine.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    configure_app(app, settings, env_prefix=ENV_PREFIX)
    for router in (
        ranking.router,
        events.router,
        catalogue.router,
        model.router,
        users.router,
        health.router,
        pages.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    install_error_handlers(app)
    return app
