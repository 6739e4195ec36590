"""The one interface every Keel model runtime implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Predictor(Protocol):
    """A loaded model that embeds, classifies and scores text. Implementations are thread-safe.

    Attributes:
        labels: label names of the default head (empty for an embedding-only model).
        heads: names of the classification heads, default head first.
        dim: size of the embedding vectors.
    """

    @property
    def labels(self) -> list[str]: ...

    @property
    def heads(self) -> list[str]: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return L2-normalised float32 embeddings, shape ``[n, dim]``."""
        ...

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Return class probabilities ``[n, n_labels]`` of ``head`` (default head if None)."""
        ...

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the probabilities of every head from one encoder pass."""
        ...

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        """Return the most probable label of each text (top-1, also for multi-label heads)."""
        ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return one relevance score per ``(query, passage)`` pair, shape ``[n]``."""
        ...
