"""Health, Prometheus metrics and ad-hoc scoring."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Request, Response
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from finance_monitor.api.deps import RuntimeDep, SettingsDep
from finance_monitor.scoring import score_texts
from finance_monitor.tickers import TickerExtractor, load_companies
from keel_service import Readiness, Status, app_metrics, health_router

_STATUS = {"ok": Status.OK, "degraded": Status.DEGRADED, "unavailable": Status.STARTING}


def readiness(request: Request) -> Readiness:
    """Ready once models are loaded and the stages run; ``degraded`` (503) when a stage
    keeps restarting, with reasons naming the stage and the error class only."""
    runtime = request.app.state.runtime
    details = runtime.health()
    status = details.pop("status")
    reasons = details.pop("reasons")
    if status == "unavailable" and runtime.state == "failed":
        return Readiness(Status.FAILED, reasons=reasons, details=details)
    return Readiness(_STATUS.get(status, Status.FAILED), reasons=reasons, details=details)


router = health_router(readiness)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: lag, messages/s, batch latency, DLQ count, alerts, HTTP,
    and ``keel_ready`` (1 when ``/readyz`` would answer 200; for alerting rules)."""
    return app_metrics(request, REGISTRY, readiness)


#: A hard cap checked while parsing (``max_text_chars`` may set a lower one).
MAX_SCORE_TEXT_CHARS = 100_000


class ScoreIn(BaseModel):
    """Texts to tag (at most 64 per request)."""

    texts: list[Annotated[str, Field(max_length=MAX_SCORE_TEXT_CHARS)]] = Field(
        min_length=1, max_length=64
    )


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
                "lang": v.lang,
            }
            for t, v in zip(body.texts, verdicts, strict=True)
        ]
    }
