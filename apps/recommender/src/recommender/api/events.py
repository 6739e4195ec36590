"""``POST /events`` (impressions, clicks, ...) and ``GET /events``."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from recommender.api.deps import ServiceDep, WriterKey
from recommender.api.schemas import EventsOut, EventsRequest
from recommender.storage import StoredEvent

router = APIRouter(prefix="/events", tags=["events"])


@router.post(
    "",
    status_code=201,
    dependencies=[WriterKey],
    response_model=EventsOut,
    summary="Store interaction events",
    responses={
        207: {"model": EventsOut, "description": "some events stored, the others listed"},
        422: {"description": "malformed body, or no event of the batch could be stored"},
    },
)
def add_events(body: EventsRequest, service: ServiceDep) -> JSONResponse:
    """Store events in the database; clicks and purchases update popularity immediately.

    Each event is judged on its own: one stamped more than ``max_future_skew_s`` ahead of
    the server clock or ``max_past_skew_days`` behind it, or naming an item the catalogue
    does not hold, is refused and listed; the rest are stored. 201 ``{stored}`` when every
    event was stored, 207 ``{stored, rejected: [{index, item_id, field, reason,
    message}]}`` when some were, 422 naming ``events[i].<field>`` when none was.
    """
    now = time.time()
    outcome = service.record_events(
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
        ],
        now=now,
    )
    if not outcome.rejected:
        return JSONResponse(status_code=201, content={"stored": outcome.stored})
    if outcome.stored == 0:
        detail = [
            {
                "loc": ["body", "events", r.index, r.field],
                "msg": r.message,
                "type": r.reason,
            }
            for r in outcome.rejected
        ]
        return JSONResponse(status_code=422, content={"detail": detail})
    rejected = [r.__dict__ for r in outcome.rejected]
    return JSONResponse(status_code=207, content={"stored": outcome.stored, "rejected": rejected})


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
def served_ranking(
    service: ServiceDep, request_id: str = Path(min_length=1, max_length=100)
) -> dict[str, object]:
    """The logged ranking of a request: user, A/B bucket, endpoint and item order.

    Rankings are written by a background thread, so one may appear a few ms late.
    """
    ranking = service.events.ranking(request_id)
    if ranking is None:
        raise HTTPException(404, detail=f"request_id {request_id!r} not logged (yet)")
    return ranking
