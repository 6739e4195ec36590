"""``load_predictor_lazily``: a predictor whose weights load on first use.

Opening a saved vector index only needs the embedder's ``dim``, which a model's files
record; loading torch and the weights to learn it costs seconds per model. A command
that usually finds nothing new to embed (an app's ``prepare`` on a cached state) can
open its index with a lazy predictor and load the model only when a text does need it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError
from keel.inference._artifact import ENCODER_DIR, META_FILE
from keel.inference._loader import load_predictor, resolve_model_dir
from keel.inference._protocol import Predictor


def peek_dim(model_dir: str | Path) -> int | None:
    """The embedding size that ``load_predictor(model_dir)`` will report, read from the
    model's metadata without loading it; None where the files do not say it plainly
    (a cross-encoder, an unreadable config)."""
    folder = resolve_model_dir(model_dir)
    if (folder / META_FILE).is_file():
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("task") == "cross_encoder":
            return None
        if meta.get("dim"):
            try:
                return int(meta["dim"])
            except (TypeError, ValueError):
                return None
        return _hidden_size(folder / ENCODER_DIR)
    return _hidden_size(folder)


def _hidden_size(encoder_dir: Path) -> int | None:
    try:
        return int(json.loads((encoder_dir / "config.json").read_text())["hidden_size"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


class LazyPredictor:
    """A ``Predictor`` that loads the real one on its first use other than ``dim``.

    Thread-safe: concurrent first calls load the model once. If the loaded model's
    ``dim`` differs from the one declared, the load fails with ``ArtifactError`` rather
    than serve vectors of another size than the index was opened with.
    """

    def __init__(self, load: Callable[[], Predictor], dim: int, name: str) -> None:
        self._load = load
        self._dim = dim
        self._name = name
        self._model: Predictor | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the real model has been loaded."""
        return self._model is not None

    @property
    def model(self) -> Predictor:
        """The real predictor (loaded now if it was not yet)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    model = self._load()
                    if model.dim != self._dim:
                        raise ArtifactError(
                            f"{self._name}: the loaded model gives {model.dim}-dim vectors, "
                            f"its metadata said {self._dim}"
                        )
                    self._model = model
        return self._model

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def heads(self) -> list[str]:
        return self.model.heads

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.embed(texts)

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        return self.model.classify(texts, head)

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.model.classify_heads(texts)

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        return self.model.predict_labels(texts, head)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.model.score_pairs(pairs)

    def __getattr__(self, name: str) -> Any:
        # Anything beyond the protocol (``variant``, ``cache_info``...) is the real model's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.model, name)


def load_predictor_lazily(model_dir: str | Path, **kwargs: Any) -> Predictor:
    """``load_predictor(model_dir, **kwargs)``, deferred until first needed.

    Returns a :class:`LazyPredictor` whose ``dim`` comes from the model's metadata; where
    the metadata does not give it (see :func:`peek_dim`) the model loads now, as with
    ``load_predictor``. A missing folder fails now either way.
    """
    dim = peek_dim(model_dir)
    if dim is None:
        return load_predictor(model_dir, **kwargs)
    return LazyPredictor(lambda: load_predictor(model_dir, **kwargs), dim, str(model_dir))
