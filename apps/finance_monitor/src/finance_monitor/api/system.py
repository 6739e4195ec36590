"""Health, Prometheus metrics and ad-hoc scoring."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from finance_monitor.api.deps import RuntimeDep, SettingsDep
from finance_monitor.scoring import score_texts
from finance_monitor.tickers import TickerExtractor, load_companies
from keel_service import app_metrics

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: 200 ``{"status": "ok"}`` once models are loaded and the stages run.

    503 with ``status`` ``unavailable`` while starting, or ``degraded`` with ``reasons``
    when a stage keeps restarting (names the stage and the error class only).
    """
    details = runtime.health()
    return JSONResponse(details, status_code=200 if details["status"] == "ok" else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: lag, messages/s, batch latency, DLQ count, alerts, HTTP."""
    return app_metrics(request.app, REGISTRY)


class ScoreIn(BaseModel):
    """Texts to tag (at most 64 per request)."""

    texts: list[str] = Field(min_length=1, max_length=64)


@router.post("/api/score", tags=["scoring"])
def score(body: ScoreIn, runtime: RuntimeDep, settings: SettingsDep) -> dict[str, Any]:
    """Topic, sentiment and tickers for a few texts, without going through Kafka."""
    for i, text in enumerate(body.texts):
        if not text.strip() or len(text) > settings.max_text_chars:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["body", "texts", i],
                        "msg": f"must be 1..{settings.max_text_chars} non-blank characters",
                    }
                ],
            )
    if runtime.model is None:
        raise HTTPException(503, detail="models are still loading")
    extractor = TickerExtractor(load_companies(settings.companies_file))
    verdicts = score_texts(runtime.model, body.texts)
    return {
        "results": [
            {
                "text": t,
                "topic": v.topic,
                "topic_confidence": v.topic_confidence,
                "sentiment": v.sentiment,
                "sentiment_scores": v.sentiment_scores,
                "tickers": extractor.extract(t),
            }
            for t, v in zip(body.texts, verdicts, strict=True)
        ]
    }
