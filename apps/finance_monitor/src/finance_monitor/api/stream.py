"""Server-sent events for the dashboard: new trend windows and new alerts as they are stored.

SQLite calls are blocking, so every store read runs in a worker thread
(``anyio.to_thread``) and never stalls the event loop. The number of open streams
is capped (``KEEL_FM_SSE_MAX_SUBSCRIBERS``): beyond it the endpoint answers 503 with
``Retry-After`` instead of piling up pollers.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from finance_monitor import metrics
from finance_monitor.api.deps import SettingsDep, StoreDep
from finance_monitor.storage import MonitorStore

router = APIRouter(prefix="/api/stream", tags=["stream"])
POLL_S = 1.0
KEEPALIVE_S = 15.0


class SubscriberSlots:
    """A counter of open streams with a cap (one per app, thread-safe)."""

    def __init__(self) -> None:
        self.open = 0
        self._lock = threading.Lock()

    def acquire(self, cap: int) -> bool:
        """Take a slot; False when ``cap`` streams are already open."""
        with self._lock:
            if self.open >= cap:
                return False
            self.open += 1
            metrics.SSE_SUBSCRIBERS.set(self.open)
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.open = max(self.open - 1, 0)
            metrics.SSE_SUBSCRIBERS.set(self.open)


def _slots(request: Request) -> SubscriberSlots:
    state = request.app.state
    if not hasattr(state, "sse_slots"):
        state.sse_slots = SubscriberSlots()
    return state.sse_slots


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(
    request: Request, store: MonitorStore, history: int, slots: SubscriberSlots
) -> AsyncIterator[str]:
    try:
        last_id = await anyio.to_thread.run_sync(store.last_trend_point_id)
        last_point = max(last_id - history, 0)
        alerts = await anyio.to_thread.run_sync(functools.partial(store.list_alerts, limit=50))
        last_alert = max((a["rowid"] for a in alerts), default=0)
        yield "retry: 2000\n\n"
        yield _event("alerts", list(reversed(alerts)))
        idle = 0.0
        while not await request.is_disconnected():
            points = await anyio.to_thread.run_sync(store.trend_points_after, last_point)
            if points:
                last_point = points[-1]["id"]
                yield _event("trend", points)
            new_alerts = await anyio.to_thread.run_sync(
                functools.partial(store.list_alerts, limit=100, after_rowid=last_alert)
            )
            if new_alerts:
                last_alert = max(a["rowid"] for a in new_alerts)
                yield _event("alerts", list(reversed(new_alerts)))
            if not points and not new_alerts:
                idle += POLL_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield ": keep-alive\n\n"
            await anyio.sleep(POLL_S)
    finally:
        slots.release()


@router.get("", response_model=None)
async def stream(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    history: int = Query(500, ge=0, le=5000),
) -> StreamingResponse | JSONResponse:
    """``text/event-stream``: ``trend`` events (closed tumbling windows) and ``alerts`` events.

    503 (with ``Retry-After``) when ``sse_max_subscribers`` streams are already open.
    """
    slots = _slots(request)
    if not slots.acquire(settings.sse_max_subscribers):
        return JSONResponse(
            {"detail": f"too many open event streams (limit {settings.sse_max_subscribers})"},
            status_code=503,
            headers={"Retry-After": "10"},
        )
    return StreamingResponse(
        _events(request, store, history, slots),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
