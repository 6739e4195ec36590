"""Annotated FastAPI dependencies: settings, runtime, store, admin API key."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from finance_monitor.config import Settings, get_settings
from finance_monitor.runtime import MonitorRuntime
from finance_monitor.store import MonitorStore


def get_runtime(request: Request) -> MonitorRuntime:
    """The process's runtime (set on ``app.state`` by ``create_app``)."""
    return request.app.state.runtime


def get_store(runtime: Annotated[MonitorRuntime, Depends(get_runtime)]) -> MonitorStore:
    """The SQLite store."""
    return runtime.store


def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    x_api_key: Annotated[str | None, Header()] = None,
) -> str:
    """Admin endpoints need ``X-API-Key``; returns a name for audit fields."""
    if x_api_key is None or not secrets.compare_digest(x_api_key, settings.api_key):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="missing or wrong X-API-Key header"
        )
    return "api-key"


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[MonitorRuntime, Depends(get_runtime)]
StoreDep = Annotated[MonitorStore, Depends(get_store)]
AdminDep = Annotated[str, Depends(require_api_key)]
