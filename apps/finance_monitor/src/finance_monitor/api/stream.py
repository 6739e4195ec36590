"""Server-sent events for the dashboard: new trend windows and new alerts as they are stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from finance_monitor.api.deps import StoreDep
from finance_monitor.store import MonitorStore

router = APIRouter(prefix="/api/stream", tags=["stream"])
POLL_S = 1.0
KEEPALIVE_S = 15.0


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(request: Request, store: MonitorStore, history: int) -> AsyncIterator[str]:
    last_point = max(store.last_trend_point_id() - history, 0)
    alerts = store.list_alerts(limit=50)
    last_alert = max((a["rowid"] for a in alerts), default=0)
    yield "retry: 2000\n\n"
    yield _event("alerts", list(reversed(alerts)))
    idle = 0.0
    while not await request.is_disconnected():
        points = store.trend_points_after(last_point)
        if points:
            last_point = points[-1]["id"]
            yield _event("trend", points)
        new_alerts = store.list_alerts(limit=100, after_rowid=last_alert)
        if new_alerts:
            last_alert = max(a["rowid"] for a in new_alerts)
            yield _event("alerts", list(reversed(new_alerts)))
        if not points and not new_alerts:
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get("")
async def stream(
    request: Request, store: StoreDep, history: int = Query(500, ge=0, le=5000)
) -> StreamingResponse:
    """``text/event-stream``: ``trend`` events (closed tumbling windows) and ``alerts`` events."""
    return StreamingResponse(
        _events(request, store, history),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
