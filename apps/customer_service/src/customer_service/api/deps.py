"""Annotated dependencies: runtime, services, settings, API key, rate limit."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from customer_service.config import Settings
from customer_service.runtime import AppRuntime, Services


def get_runtime(request: Request) -> AppRuntime:
    runtime: AppRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[AppRuntime, Depends(get_runtime)]


def get_services(runtime: RuntimeDep) -> Services:
    return runtime.require()


ServicesDep = Annotated[Services, Depends(get_services)]


def get_app_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="admin / agent API key")] = None,
) -> None:
    """Refuse the request (401) unless ``X-API-Key`` matches the configured key."""
    if x_api_key is None or not secrets.compare_digest(x_api_key, settings.api_key):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )


ApiKeyDep = Depends(require_api_key)


def client_id(request: Request) -> str:
    """The client a request is counted against: its IP address."""
    return request.client.host if request.client else "unknown"


def enforce_rate_limit(request: Request, runtime: RuntimeDep) -> None:
    """Refuse the request (429, ``Retry-After``) when its client is over the rate limit."""
    wait = runtime.rate_limiter.acquire(client_id(request))
    if wait > 0:
        runtime.metrics.rate_limited.inc()
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit of {runtime.settings.rate_limit_per_minute} messages per minute exceeded",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


RateLimitDep = Depends(enforce_rate_limit)
