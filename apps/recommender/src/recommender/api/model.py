"""Inspect the learned blend and the prepared models; list demo users."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from recommender.api.deps import ServiceDep

router = APIRouter(tags=["model"])


@router.get("/model/blend", summary="The learned blend's weights")
def blend_weights(service: ServiceDep) -> dict[str, object]:
    """Per input: importance and the shape (feature value -> score contribution)."""
    return service.signals.blend.describe()


@router.get("/model", summary="What was prepared and how")
def model_info(service: ServiceDep) -> dict[str, object]:
    """Manifest of the prepared state (serving model, compression, training report)."""
    m = service.manifest
    return {
        "serving_model": m.get("serving_model"),
        "encoder_model": m.get("encoder_model"),
        "source": m.get("source"),
        "created": m.get("created"),
        "report": m.get("report"),
        "blend": m.get("blend"),
        "buckets": service.settings.bucket_configs,
    }


@router.get("/users", tags=["users"], summary="Users known from the interaction log")
def users(service: ServiceDep) -> dict[str, object]:
    """Demo users with display names (for the playground)."""
    return {
        "users": [
            {
                "id": uid,
                "name": name,
                "bucket": service.bucket_for(uid).name,
                "history": len(service.demo_histories.get(uid, [])),
            }
            for uid, name in list(service.users.items())[:500]
        ]
    }


@router.get("/users/{user_id}/history", tags=["users"], summary="A user's positive history")
def user_history(user_id: str, service: ServiceDep, limit: int = 50) -> dict[str, object]:
    """Catalogue items the user liked (data set log + stored click/purchase events)."""
    ids = service.stored_history(user_id, max(1, min(limit, 500)))
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
