"""``Annotated`` dependencies: the settings, the running service, the admin key check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from keel_service import Role, require_role
from recommender.config import Settings, get_settings
from recommender.service import RecommenderService


# ``async def`` on purpose: these only read ``app.state``, and FastAPI would run a plain
# ``def`` dependency on the thread pool (a thread hop per dependency per request).
async def _service(request: Request) -> RecommenderService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        error = getattr(request.app.state, "startup_error", None)
        detail = error or "models are still loading"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return service


async def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


ServiceDep = Annotated[RecommenderService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
#: Catalogue changes: the admin key.
AdminKey = require_role(Role.ADMIN)
#: Posting events: the writer key or the admin key.
WriterKey = require_role(Role.WRITER)
