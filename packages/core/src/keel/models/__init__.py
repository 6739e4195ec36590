"""Packaged base models (offline) and Keel model artifacts."""

from keel.models._card import render_model_card, write_model_card
from keel.models._registry import (
    PACKAGED_MODELS,
    PackagedModel,
    load_sentence_encoder,
    model_path,
    set_offline_env,
)
from keel.models.artifact import (
    ARTIFACT_FORMAT,
    ENCODER_DIR,
    META_FILE,
    ArtifactMeta,
    folder_size_mb,
    head_file_name,
    read_meta,
    write_meta,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "ENCODER_DIR",
    "META_FILE",
    "PACKAGED_MODELS",
    "ArtifactMeta",
    "PackagedModel",
    "folder_size_mb",
    "head_file_name",
    "load_sentence_encoder",
    "model_path",
    "read_meta",
    "render_model_card",
    "set_offline_env",
    "write_meta",
    "write_model_card",
]
