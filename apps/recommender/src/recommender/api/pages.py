"""The playground page (static HTML + vanilla JS served by the app)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["pages"])

STATIC_DIR = Path(str(resources.files("recommender") / "static"))


@router.get("/", include_in_schema=False)
def playground() -> FileResponse:
    """Pick a demo user, see the history and the reranked list with reasons."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
