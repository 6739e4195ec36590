"""The dashboard page (static HTML/JS/CSS shipped as package data)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    """Live sentiment chart per topic and the alert list."""
    return HTMLResponse(
        resources.files("finance_monitor").joinpath("static/index.html").read_text()
    )
