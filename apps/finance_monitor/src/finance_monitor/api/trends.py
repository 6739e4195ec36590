"""Trend series per topic and per ticker."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from finance_monitor.api.deps import StoreDep

router = APIRouter(prefix="/api/trends", tags=["trends"])


@router.get("")
def list_series(store: StoreDep) -> dict[str, Any]:
    """Every series with closed windows (busiest first)."""
    return {"series": store.list_series()}


@router.get("/{kind}/{name}")
def series_points(
    kind: Literal["topic", "ticker"],
    name: str,
    store: StoreDep,
    window: Literal["tumbling", "sliding"] = "tumbling",
    limit: int = Query(200, ge=1, le=5000),
) -> dict[str, Any]:
    """Closed windows of one series, oldest first (``/api/trends/topic/Earnings``)."""
    series = f"{kind}:{name}"
    return {"series": series, "window": window, "points": store.trend_series(series, window, limit)}
