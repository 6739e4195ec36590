"""Inference runtime: one ``Predictor`` interface over torch and onnxruntime backends,
micro-batching for servers, and a deterministic fake for unit tests."""

from keel.inference._batcher import BatcherClosedError, MicroBatcher
from keel.inference._cache import EmbeddingCache
from keel.inference._encoder_base import EncoderPredictor
from keel.inference._loader import Backend, load_predictor
from keel.inference._protocol import Predictor
from keel.inference.fake import FakePredictor
from keel.models._heads import LinearHead
from keel.models._pooling import mean_pool

__all__ = [
    "Backend",
    "BatcherClosedError",
    "EmbeddingCache",
    "EncoderPredictor",
    "FakePredictor",
    "LinearHead",
    "MicroBatcher",
    "Predictor",
    "load_predictor",
    "mean_pool",
]
