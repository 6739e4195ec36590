"""Wiring the shared plumbing into an app, and running it under uvicorn."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keel_service.limits import BodySizeLimitMiddleware, ClientIdentifier
from keel_service.settings import ServiceSettings


def configure_app(app: FastAPI, settings: ServiceSettings, *, env_prefix: str) -> None:
    """Check the keys, then install the key ring, the client identifier and the body limit.

    Raises:
        InsecureConfigError: a missing or default key (the message says how to set one).
    """
    settings.check_keys(env_prefix)
    app.state.keyring = settings.keyring()
    app.state.client_id = ClientIdentifier(settings.trusted_proxy_header, settings.trusted_proxies)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)


def run_server(app: Any, settings: ServiceSettings, *, host: str, port: int, **kwargs: Any) -> None:
    """``uvicorn.run`` with the settings' graceful-shutdown timeout.

    ``app`` is an application or an import string (``factory=True`` for a factory).
    """
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        log_level=kwargs.pop("log_level", "info"),
        **kwargs,
    )
