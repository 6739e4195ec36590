"""Keel: fine-tune, compress and serve small transformer models on a CPU.

The most used names are re-exported here; each subpackage (``keel.data``,
``keel.training``, ``keel.inference``, ``keel.retrieval``, ``keel.compression``,
``keel.evaluation``, ``keel.tuning``, ``keel.models``) exports the rest. Heavy
libraries (torch, transformers, FAISS, onnxruntime) load on first use, not on import.
"""

from keel.compression import compress, compression_report, export_onnx
from keel.data import LabelledTexts, LabelMap, load_labelled
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
from keel.inference import MicroBatcher, Predictor, load_predictor
from keel.models import ArtifactMeta, load_sentence_encoder, model_path, read_meta, set_offline_env
from keel.retrieval import Hit, HybridRetriever, VectorIndex
from keel.training import (
    ClassifierConfig,
    Strategy,
    TextClassifier,
    train_classifier,
    train_multi_head,
)

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ArtifactMeta",
    "ClassifierConfig",
    "ConfigError",
    "DataError",
    "DeadlineExceededError",
    "Hit",
    "HybridRetriever",
    "IndexNotBuiltError",
    "KeelError",
    "LabelMap",
    "LabelledTexts",
    "MicroBatcher",
    "ModelNotFoundError",
    "Predictor",
    "QueueFullError",
    "Strategy",
    "TextClassifier",
    "VectorIndex",
    "__version__",
    "compress",
    "compression_report",
    "export_onnx",
    "load_labelled",
    "load_predictor",
    "load_sentence_encoder",
    "model_path",
    "read_meta",
    "set_offline_env",
    "train_classifier",
    "train_multi_head",
]
