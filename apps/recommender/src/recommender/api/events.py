"""``POST /events`` (impressions, clicks, ...) and ``GET /events``."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Query

from recommender.api.deps import ServiceDep
from recommender.api.schemas import EventsRequest
from recommender.storage import StoredEvent

router = APIRouter(prefix="/events", tags=["events"])


@router.post("", status_code=201, summary="Store interaction events")
def add_events(body: EventsRequest, service: ServiceDep) -> dict[str, int]:
    """Store events in SQLite; clicks and purchases update popularity immediately."""
    now = time.time()
    stored = service.record_events(
        [
            StoredEvent(
                e.user_id,
                e.item_id,
                e.type,
                e.timestamp if e.timestamp is not None else now,
                e.bucket,
                e.request_id,
                e.position,
                e.value,
            )
            for e in body.events
        ]
    )
    return {"stored": stored}


@router.get("", summary="Events of one user")
def user_events(
    service: ServiceDep,
    user_id: str = Query(min_length=1, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, object]:
    """The newest events of ``user_id``, oldest first."""
    events = service.events.for_user(user_id, limit)
    return {"user_id": user_id, "events": [e.__dict__ for e in events]}


@router.get("/rankings/{request_id}", summary="A served ranking, as logged")
def served_ranking(request_id: str, service: ServiceDep) -> dict[str, object]:
    """The logged ranking of a request: user, A/B bucket, endpoint and item order.

    Rankings are written by a background thread, so one may appear a few ms late.
    """
    ranking = service.events.ranking(request_id)
    if ranking is None:
        raise HTTPException(404, detail=f"request_id {request_id!r} not logged (yet)")
    return ranking
