"""The web pages: chat window, agent queue, and knowledge-base articles (cited links)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from customer_service.api.deps import ServicesDep

router = APIRouter(tags=["pages"], include_in_schema=False)


def _static(name: str) -> str:
    return resources.files("customer_service").joinpath("static", name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def chat_page() -> HTMLResponse:
    return HTMLResponse(_static("index.html"))


@router.get("/agent", response_class=HTMLResponse)
def agent_page() -> HTMLResponse:
    return HTMLResponse(_static("agent.html"))


@router.get("/kb/{doc_id}", response_class=HTMLResponse)
def article_page(doc_id: str, services: ServicesDep) -> HTMLResponse:
    """An article; its title and text are inserted by ``article.js`` with textContent."""
    services.knowledge_base.get(doc_id)  # 404 for an unknown id
    return HTMLResponse(_static("article.html"))


@router.get("/kb/{doc_id}/content")
def article_content(doc_id: str, services: ServicesDep) -> dict[str, str]:
    document = services.knowledge_base.get(doc_id)
    return {
        "doc_id": document.doc_id,
        "title": document.title,
        "text": document.text,
        "url": document.url,
    }
