"""Users known from the interaction log and their histories (for the playground)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query

from recommender.api.deps import ServiceDep
from recommender.service import RecommenderService

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", summary="Users known from the interaction log")
def users(service: ServiceDep) -> dict[str, object]:
    """Demo users with display names and the language of their history (for the playground)."""
    return {
        "users": [
            {
                "id": uid,
                "name": name,
                "bucket": service.bucket_for(uid).name,
                "history": len(service.demo_histories.get(uid, [])),
                "language": history_language(service, uid),
            }
            for uid, name in list(service.users.items())[:500]
        ]
    }


def history_language(service: RecommenderService, user_id: str) -> str:
    """``"zh"``, ``"en"`` or ``"mixed"``: the script of the titles a demo user liked.

    The playground's catalogue switch filters users by it; ``"und"`` when the history
    has no titles (a user known only from stored events).
    """
    from keel.text import detect_language

    snap = service.catalogue.snapshot
    titles = [
        snap.items[snap.rows[i]].title
        for i in service.demo_histories.get(user_id, [])[:50]
        if i in snap.rows
    ]
    return str(detect_language(" ".join(titles)).value) if titles else "und"


@router.get("/{user_id}/history", summary="A user's positive history")
def user_history(
    service: ServiceDep,
    user_id: str = Path(min_length=1, max_length=200),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, object]:
    """Catalogue items the user liked (data set log + stored click/purchase events)."""
    ids = service.stored_history(user_id, limit)
    if not ids and user_id not in service.users:
        raise HTTPException(404, detail=f"user_id {user_id!r} has no history")
    snap = service.catalogue.snapshot
    items = [
        {
            "id": i,
            "title": snap.items[snap.rows[i]].title,
            "categories": snap.items[snap.rows[i]].categories,
        }
        for i in ids
        if i in snap.rows
    ]
    return {"user_id": user_id, "bucket": service.bucket_for(user_id).name, "items": items}
