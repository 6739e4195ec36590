"""onnxruntime backend: an exported encoder graph (``model.onnx``) + numpy heads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError
from keel.inference._encoder_base import EncoderPredictor
from keel.inference._tokens import BatchTokenizer
from keel.models._heads import LinearHead
from keel.models._prefixes import NO_PREFIXES, TextPrefixes

ONNX_OUTPUT = "sentence_embedding"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise ImportError(
            "the onnx backend needs onnxruntime: pip install 'onnxruntime>=1.18,<2'"
        ) from exc
    return onnxruntime


def create_session(model_file: Path, num_threads: int | None = None) -> Any:
    """An onnxruntime CPU session with all graph optimisations.

    Args:
        model_file: the ``.onnx`` file.
        num_threads: intra-op threads (None: onnxruntime's default, one per core).
    """
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ArtifactError(f"{model_file}: onnxruntime cannot load the graph: {exc}") from exc


class OnnxEncoderPredictor(EncoderPredictor):
    """Encoder graph on onnxruntime; heads in numpy."""

    backend = "onnx"

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        *,
        dim: int,
        heads: dict[str, LinearHead],
        max_length: int,
        normalize_features: bool,
        cache_size: int = 0,
        batch_size: int = 64,
        variant: str = "onnx-fp32",
        prefixes: TextPrefixes = NO_PREFIXES,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._tokens = BatchTokenizer(tokenizer, max_length)
        self._input_names = [i.name for i in session.get_inputs()]
        missing = {"input_ids", "attention_mask"} - set(self._input_names)
        if missing:
            raise ArtifactError(f"the ONNX graph lacks inputs {sorted(missing)}")
        super().__init__(
            dim=dim,
            heads=heads,
            normalize_features=normalize_features,
            cache_size=cache_size,
            batch_size=batch_size,
            variant=variant,
            prefixes=prefixes,
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        batch = self._tokens.padded(texts)
        feeds = {name: batch[name] for name in self._input_names if name in batch}
        if "token_type_ids" in self._input_names and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        (embedding,) = self.session.run([ONNX_OUTPUT], feeds)
        return np.asarray(embedding, dtype=np.float32)


def default_threads() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
