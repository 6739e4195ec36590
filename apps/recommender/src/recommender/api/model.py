"""Inspect the learned blend and the prepared models."""

from __future__ import annotations

from fastapi import APIRouter

from recommender.api.deps import ServiceDep

router = APIRouter(prefix="/model", tags=["model"])


@router.get("/blend", summary="The learned blend's weights")
def blend_weights(service: ServiceDep) -> dict[str, object]:
    """Per input: importance and the shape (feature value -> score contribution)."""
    return service.signals.blend.describe()


@router.get("", summary="What was prepared and how")
def model_info(service: ServiceDep) -> dict[str, object]:
    """Manifest of the prepared state (serving model, compression, training report)."""
    m = service.manifest
    return {
        "serving_model": m.get("serving_model"),
        "encoder_model": m.get("encoder_model"),
        "encoder_choice": m.get("encoder_choice"),
        "source": m.get("source"),
        "created": m.get("created"),
        "report": m.get("report"),
        "blend": m.get("blend"),
        "buckets": service.settings.bucket_configs,
    }
