"""``Annotated`` dependencies: the settings, the running service, the admin key check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from recommender.config import Settings, get_settings
from recommender.service import RecommenderService


def _service(request: Request) -> RecommenderService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        error = getattr(request.app.state, "startup_error", None)
        detail = f"service failed to start: {error}" if error else "models are still loading"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return service


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


def _require_api_key(
    settings: Annotated[Settings, Depends(_settings)],
    x_api_key: Annotated[str | None, Header()] = None,
) -> None:
    if x_api_key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="missing X-API-Key header (admin endpoint)"
        )
    if not secrets.compare_digest(x_api_key, settings.api_key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid X-API-Key")


ServiceDep = Annotated[RecommenderService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
AdminKey = Depends(_require_api_key)
