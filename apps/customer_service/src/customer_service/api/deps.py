"""Annotated dependencies: runtime, services, settings, API keys by role, rate limit.

The dependencies are ``async``: none of them blocks, and FastAPI runs a plain ``def``
dependency on its thread pool, a hand-off per dependency and request. ``/chat`` takes one
dependency (:data:`ChatDep`: the rate limit, the runtime and the services) instead of
three, since FastAPI spends CPU on every dependency it solves.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request, status

from customer_service.config import Settings
from customer_service.runtime import AppRuntime, Services
from keel_service import Role, require_role


async def get_runtime(request: Request) -> AppRuntime:
    runtime: AppRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[AppRuntime, Depends(get_runtime)]


async def get_services(runtime: RuntimeDep) -> Services:
    return runtime.require()


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_app_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

#: Agent endpoints: the agent key or the admin key.
AgentKeyDep = require_role(Role.AGENT)
#: Admin endpoints: the admin key only.
AdminKeyDep = require_role(Role.ADMIN)


def check_rate_limit(request: Request, runtime: AppRuntime) -> None:
    """Refuse the request (429, ``Retry-After``) when its client is over the rate limit."""
    wait = runtime.rate_limiter.acquire(request.app.state.client_id(request))
    if wait > 0:
        runtime.metrics.rate_limited.inc()
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit of {runtime.settings.rate_limit_per_minute} messages per minute exceeded",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


async def enforce_rate_limit(request: Request, runtime: RuntimeDep) -> None:
    """Refuse the request (429, ``Retry-After``) when its client is over the rate limit."""
    check_rate_limit(request, runtime)


RateLimitDep = Depends(enforce_rate_limit)


class ChatContext(NamedTuple):
    """What ``/chat`` needs, from one dependency."""

    runtime: AppRuntime
    services: Services


async def get_chat_context(request: Request) -> ChatContext:
    """The rate limit (429), then the services (503 while starting), as
    ``RateLimitDep`` + ``ServicesDep`` + ``RuntimeDep`` would, in one dependency."""
    runtime: AppRuntime = request.app.state.runtime
    check_rate_limit(request, runtime)
    return ChatContext(runtime, runtime.require())


ChatDep = Annotated[ChatContext, Depends(get_chat_context)]
