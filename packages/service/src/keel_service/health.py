"""Liveness and readiness: ``/livez``, ``/readyz`` and ``/healthz`` (an alias of readiness)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse


class Status(StrEnum):
    """Readiness states; only ``ok`` answers 200."""

    OK = "ok"
    STARTING = "starting"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass
class Readiness:
    """What a readiness probe says: a status, the reasons when not ok, and public details.

    Nothing secret goes here: the endpoint needs no key. Put exception *types* in
    ``reasons`` (see :func:`public_error`), never their text.
    """

    status: Status
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status is Status.OK

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value, **self.details}
        if self.reasons:
            out["reasons"] = self.reasons
        return out


def public_error(what: str, exc: BaseException | str | None) -> str:
    """A reason safe to show anyone: what failed and the error's type, never its text."""
    if exc is None:
        return what
    kind = exc if isinstance(exc, str) else type(exc).__name__
    return f"{what} ({kind}); see the server log"


def health_router(check: Callable[[Request], Readiness]) -> APIRouter:
    """``/livez`` (the process answers), ``/readyz`` and ``/healthz`` (it can do its job)."""
    router = APIRouter(tags=["system"])

    @router.get("/livez", summary="Liveness: the process answers")
    def livez() -> dict[str, str]:
        return {"status": "alive"}

    def readyz(request: Request) -> JSONResponse:
        readiness = check(request)
        return JSONResponse(readiness.body(), status_code=200 if readiness.ready else 503)

    readyz.__doc__ = (
        "Readiness: 200 with details when the app can do its job; 503 with reasons otherwise."
    )
    router.add_api_route("/readyz", readyz, methods=["GET"], summary="Readiness")
    router.add_api_route(
        "/healthz", readyz, methods=["GET"], summary="Readiness (alias of /readyz)"
    )
    return router
