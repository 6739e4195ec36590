"""Inference runtime: one ``Predictor`` interface over torch and onnxruntime backends,
micro-batching for servers, a static-embedding
tier with its cascade, and a deterministic fake for unit tests."""

from keel.inference._batcher import BatcherClosedError, MicroBatcher
from keel.inference._blas import limit_blas_threads
from keel.inference._cache import EmbeddingCache
from keel.inference._encoder_base import EncoderPredictor
from keel.inference._lazy import LazyPredictor, load_predictor_lazily, peek_dim
from keel.inference._loader import Backend, load_predictor
from keel.inference._protocol import Predictor
from keel.inference._static import (
    CascadePredictor,
    StaticPredictor,
    confident_rows,
    load_cascade,
    load_static_predictor,
)
from keel.inference.fake import FakePredictor
from keel.models._heads import LinearHead
from keel.models._pooling import mean_pool

__all__ = [
    "Backend",
    "BatcherClosedError",
    "CascadePredictor",
    "EmbeddingCache",
    "EncoderPredictor",
    "FakePredictor",
    "LazyPredictor",
    "LinearHead",
    "MicroBatcher",
    "Predictor",
    "StaticPredictor",
    "confident_rows",
    "limit_blas_threads",
    "load_cascade",
    "load_predictor",
    "load_predictor_lazily",
    "load_static_predictor",
    "mean_pool",
    "peek_dim",
]
