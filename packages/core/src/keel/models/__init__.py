"""Packaged base models (offline) and Keel model artifacts."""

from keel.models._registry import (
    PACKAGED_MODELS,
    PackagedModel,
    load_sentence_encoder,
    model_path,
    set_offline_env,
)

__all__ = [
    "PACKAGED_MODELS",
    "PackagedModel",
    "load_sentence_encoder",
    "model_path",
    "set_offline_env",
]
