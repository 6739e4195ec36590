"""Annotated FastAPI dependencies: settings, runtime, store, the admin key (keel_service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finance_monitor.config import Settings, get_settings
from finance_monitor.runtime import MonitorRuntime
from finance_monitor.storage import MonitorStore
from keel_service import Role, require_role


def get_runtime(request: Request) -> MonitorRuntime:
    """The process's runtime (set on ``app.state`` by ``create_app``)."""
    return request.app.state.runtime


def get_store(runtime: Annotated[MonitorRuntime, Depends(get_runtime)]) -> MonitorStore:
    """The SQLite store."""
    return runtime.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[MonitorRuntime, Depends(get_runtime)]
StoreDep = Annotated[MonitorStore, Depends(get_store)]
AdminDep = Annotated[Role, require_role(Role.ADMIN)]
