"""Keel: fine-tune, compress and serve small transformer models on a CPU."""

from keel.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    DeadlineExceededError,
    IndexNotBuiltError,
    KeelError,
    ModelNotFoundError,
    QueueFullError,
)
from keel.models import load_sentence_encoder, model_path, set_offline_env

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DeadlineExceededError",
    "IndexNotBuiltError",
    "KeelError",
    "ModelNotFoundError",
    "QueueFullError",
    "__version__",
    "load_sentence_encoder",
    "model_path",
    "set_offline_env",
]
