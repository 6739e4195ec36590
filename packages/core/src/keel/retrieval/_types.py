"""Shared retrieval types: the ``Hit`` record, the ``Embedder`` protocol, lookup errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from keel.errors import KeelError


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: the document id given when it was added.
        score: higher is better (inner product, BM25 score or fused RRF score).
        text: the document text where the index keeps it.
        metadata: the dict stored beside the document.
    """

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into vectors; every ``keel.inference.Predictor`` is one.

    ``embed`` embeds queries. An embedder may also have ``embed_passages(texts)`` for
    the documents of an index (encoders trained with ``query: `` / ``passage: ``
    prefixes); the retrieval code uses it when present.
    """

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def embed_documents(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embed texts that go into an index: ``embed_passages`` when the embedder has it (an
    e5 encoder then adds ``passage: ``), else ``embed``."""
    embed_passages = getattr(embedder, "embed_passages", None)
    if callable(embed_passages):
        return np.asarray(embed_passages(texts))
    return embedder.embed(texts)


class UnknownIdError(KeelError, KeyError):
    """An id that the index does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown id"
