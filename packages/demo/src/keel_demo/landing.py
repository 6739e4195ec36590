"""The landing page: one link per app page, with each service's live health."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from keel_demo.services import AppService


async def _health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await client.get(f"{url}/healthz", timeout=2.0)
    except httpx.HTTPError as exc:
        return {"ok": False, "detail": f"unreachable: {type(exc).__name__}"}
    ok = response.status_code == 200
    health: dict[str, Any] = {
        "ok": ok,
        "detail": "healthy" if ok else f"HTTP {response.status_code}",
    }
    model = _model_summary(response)
    if model is not None:
        health["model"] = model
    return health


def _model_summary(response: httpx.Response) -> dict[str, Any] | None:
    """The ``model`` block of an app's ``/healthz`` (tier, validation score, upgrade), if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, dict) else None


def create_landing_app(services: list[tuple[AppService, str]]) -> FastAPI:
    """Build the landing app for ``services`` (each with its base URL)."""
    app = FastAPI(title="Keel demo", docs_url=None, redoc_url=None)
    page = resources.files("keel_demo").joinpath("static/landing.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    async def landing() -> str:
        return page

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/services")
    async def list_services() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            healths = await asyncio.gather(*(_health(client, url) for _, url in services))
        return [
            {
                "name": svc.name,
                "title": svc.title,
                "summary": svc.summary,
                "url": url,
                "pages": [{"label": p.label, "url": url + p.path} for p in svc.pages],
                "health": health,
            }
            for (svc, url), health in zip(services, healths, strict=True)
        ]

    return app
