"""Backend-independent part of encoder predictors: caching, heads and label decoding."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from keel.errors import ArtifactError, ConfigError
from keel.inference._blas import limit_blas_threads
from keel.inference._cache import EmbeddingCache
from keel.models._heads import LinearHead
from keel.models._prefixes import NO_PREFIXES, TextPrefixes, TextRole


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def pair_cosines(
    pairs: Sequence[tuple[str, str]],
    embed: Callable[[Sequence[str]], np.ndarray],
    embed_second: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """``score_pairs`` of predictors with unit-length embeddings: the cosine of each
    ``(first, second)`` pair, float32 ``[n]``. ``embed`` embeds the first texts in one
    call, ``embed_second`` (default ``embed``) the second texts in another."""
    if not pairs:
        return np.zeros(0, dtype=np.float32)
    left = embed([a for a, _ in pairs])
    right = (embed_second or embed)([b for _, b in pairs])
    return np.asarray((left * right).sum(axis=1), dtype=np.float32)


def length_buckets(
    lengths: Sequence[int], batch_size: int, min_bucket: int = 4, growth: float = 1.3
) -> list[list[int]]:
    """Split positions into batches of similar length (fewer padding tokens).

    Positions are sorted by length; a new batch starts when the current one is full,
    or when it holds at least ``min_bucket`` items and the next text is more than
    ``growth`` times (plus 16 characters) longer than its shortest one. Padding to
    the longest text otherwise wastes most of the compute of a mixed batch. The
    defaults were 8 and 1.6 until 2026-12-01: on a 1-layer int8 ONNX MiniLM and
    Banking77 validation batches of 32, 4 and 1.3 ran 2,922-3,314 texts/s against
    2,156-2,292 (one padded batch of 32: about 1,400); onnxruntime's per-call cost is
    small next to the padding it saves.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            len(current) >= batch_size
            or (len(current) >= min_bucket and lengths[i] > growth * lengths[current[0]] + 16)
        ):
            buckets.append(current)
            current = []
        current.append(i)
    if current:
        buckets.append(current)
    return buckets


class EncoderPredictor(ABC):
    """A ``Predictor`` made of an encoder (pooled embedding) and numpy linear heads.

    Subclasses implement ``_encode`` for one batch; this class adds the encoder's text
    prefixes (e5: ``query: `` for classification, embedding and queries, ``passage: ``
    for ``embed_passages``), the LRU cache, length-sorted batching (unless ``_encode``
    packs), normalisation, and the heads. Thread-safe: the encoder runs under a lock
    (tokenizers are not re-entrant) and the cache has its own lock.
    """

    backend: str = "abstract"

    def __init__(
        self,
        *,
        dim: int,
        heads: dict[str, LinearHead],
        normalize_features: bool,
        cache_size: int = 0,
        batch_size: int = 64,
        variant: str = "fp32",
        prefixes: TextPrefixes = NO_PREFIXES,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "must be >= 1")
        # The heads' small products after each pass run faster on one BLAS thread.
        limit_blas_threads()
        for head in heads.values():
            if head.dim != dim:
                raise ArtifactError(
                    f"head {head.name!r} expects dim {head.dim}, encoder gives {dim}"
                )
        self._dim = dim
        self._heads = heads
        self._normalize_features = normalize_features
        self._cache = EmbeddingCache(cache_size)
        self._lock = threading.Lock()
        self.batch_size = batch_size
        self.variant = variant
        self.prefixes = prefixes

    # -- subclass hooks ------------------------------------------------------------------
    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled (not normalised) float32 embeddings of one batch of texts."""

    #: True when ``_encode`` may pack its texts without padding: then it plans its own
    #: buckets, and gets whole ``batch_size`` chunks of the length-sorted texts (one
    #: pack of 16 mixed queries beats two padded half batches).
    packs_texts: bool = False

    def _chunks(self, positions: list[int], lengths: list[int]) -> list[list[int]]:
        """``positions`` cut into the batches ``_encode`` gets (``lengths`` in chars)."""
        if self.packs_texts:
            order = sorted(range(len(positions)), key=lengths.__getitem__)
            return [
                [positions[j] for j in order[i : i + self.batch_size]]
                for i in range(0, len(order), self.batch_size)
            ]
        return [[positions[j] for j in b] for b in length_buckets(lengths, self.batch_size)]

    # -- Predictor API -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def heads(self) -> list[str]:
        return list(self._heads)

    @property
    def labels(self) -> list[str]:
        if not self._heads:
            return []
        return list(next(iter(self._heads.values())).labels)

    @property
    def cache(self) -> EmbeddingCache:
        return self._cache

    def head_labels(self, head: str | None = None) -> list[str]:
        """Label names of ``head`` (default head when None)."""
        return list(self._head(head).labels)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings ``[n, dim]`` of queries / short texts
        (the query prefix, if the encoder has one)."""
        return l2_normalize(self._pooled(texts))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings ``[n, dim]`` of documents to be searched
        (the passage prefix, if the encoder has one; else the same as ``embed``)."""
        return l2_normalize(self._pooled(texts, TextRole.PASSAGE))

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Probabilities ``[n, n_labels]`` of ``head`` (the default head when None)."""
        chosen = self._head(head)
        return chosen.probabilities(self._features(texts))

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Probabilities of every head from one encoder pass."""
        if not self._heads:
            raise ArtifactError("this model has no classification head")
        features = self._features(texts)
        return {name: head.probabilities(features) for name, head in self._heads.items()}

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        """Top-1 label of each text."""
        chosen = self._head(head)
        probabilities = chosen.probabilities(self._features(texts))
        return [chosen.labels[i] for i in probabilities.argmax(axis=1)]

    def predict_label_sets(
        self, texts: Sequence[str], head: str | None = None, threshold: float = 0.5
    ) -> list[list[str]]:
        """Labels with probability >= ``threshold`` (multi-label heads); top-1 otherwise."""
        chosen = self._head(head)
        probabilities = chosen.probabilities(self._features(texts))
        if not chosen.multi_label:
            return [[chosen.labels[i]] for i in probabilities.argmax(axis=1)]
        return [
            [chosen.labels[i] for i in np.flatnonzero(row >= threshold)] for row in probabilities
        ]

    def is_cached(self, texts: Sequence[str], role: TextRole = TextRole.QUERY) -> bool:
        """Whether every text's embedding is in the cache, so ``classify``, ``embed`` or
        ``features`` (``role=PASSAGE``: ``embed_passages``) would run no encoder pass: a
        caller may then skip a micro-batcher's thread hop. A peek; the cache's counters
        and order do not change. False when the cache is off."""
        if not self._cache.enabled or isinstance(texts, str):
            return False
        keys = self.prefixes.apply(list(texts), role)
        return all(key in self._cache for key in keys)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors the heads read: pooled embeddings, L2-normalised when the
        artifact says ``normalize`` (used to re-fit heads after compression)."""
        return self._features(texts)

    def logits(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Raw head scores before temperature and softmax (used by distillation)."""
        return self._head(head).logits(self._features(texts))

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine similarity of each ``(query, passage)`` pair (bi-encoder scoring)."""
        return pair_cosines(pairs, self.embed, self.embed_passages)

    # -- internals -----------------------------------------------------------------------
    def _head(self, head: str | None) -> LinearHead:
        if not self._heads:
            raise ArtifactError("this model has no classification head (embedding-only)")
        if head is None:
            return next(iter(self._heads.values()))
        if head not in self._heads:
            raise ConfigError("head", head, f"unknown head; this model has {self.heads}")
        return self._heads[head]

    def _features(self, texts: Sequence[str]) -> np.ndarray:
        pooled = self._pooled(texts)
        return l2_normalize(pooled) if self._normalize_features else pooled

    def _pooled(self, texts: Sequence[str], role: TextRole = TextRole.QUERY) -> np.ndarray:
        if isinstance(texts, str):
            raise ConfigError("texts", texts[:40], "pass a list of strings, not one string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{i}]", text, "must be a string")
        # Prefixed before the cache, so a text cached as a query is not reused as a passage.
        texts = self.prefixes.apply(texts, role)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        missing: list[int] = []
        for i, text in enumerate(texts):
            cached = self._cache.get(text) if self._cache.enabled else None
            if cached is None:
                missing.append(i)
            else:
                out[i] = cached
        if missing:
            for chunk in self._chunks(missing, [len(texts[i]) for i in missing]):
                with self._lock:
                    vectors = self._encode([texts[i] for i in chunk])
                for row, i in zip(vectors, chunk, strict=True):
                    out[i] = row
                    self._cache.put(texts[i], row.copy())
        return out
