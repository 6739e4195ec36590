"""A deterministic stand-in for a real model, for the apps' unit tests of pure logic."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import numpy as np

from keel.errors import ConfigError
from keel.inference._encoder_base import pair_cosines

_WORD = re.compile(r"\w+", re.UNICODE)


def _seeded_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakePredictor:
    """Hash-based embeddings and probabilities: same text, same output, no model.

    A text's embedding is the normalised sum of one pseudo-random vector per lower-cased
    word, so texts sharing words are similar (useful for retrieval tests). A label's
    score is the cosine between the text and the label name, plus a bonus when a word of
    the label name appears in the text; probabilities are a softmax (sigmoid for
    multi-label heads) of those scores.

    Args:
        labels: labels of the default head (ignored when ``heads`` is given).
        heads: head name -> labels, for multi-head models (first = default).
        dim: embedding size.
        multi_label: heads named here use sigmoid instead of softmax.
    """

    backend = "fake"
    variant = "fake"

    def __init__(
        self,
        labels: Sequence[str] = (),
        *,
        heads: Mapping[str, Sequence[str]] | None = None,
        dim: int = 32,
        multi_label: Sequence[str] = (),
    ) -> None:
        if dim < 2:
            raise ConfigError("dim", dim, "must be >= 2")
        self._dim = dim
        if heads is None:
            heads = {"default": list(labels)} if labels else {}
        self._heads = {name: list(names) for name, names in heads.items()}
        for name, names in self._heads.items():
            if not names:
                raise ConfigError(f"heads[{name!r}]", names, "needs at least one label")
        self._multi_label = set(multi_label)
        self.calls = 0

    @property
    def labels(self) -> list[str]:
        return next(iter(self._heads.values()), [])

    @property
    def heads(self) -> list[str]:
        return list(self._heads)

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised bag-of-hashed-words vectors ``[n, dim]``."""
        if isinstance(texts, str):
            raise ConfigError("texts", texts[:40], "pass a list of strings, not one string")
        self.calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or [""]
            vector = sum(
                (_seeded_vector(w, self._dim) for w in words), np.zeros(self._dim, np.float32)
            )
            out[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return out

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Deterministic probabilities ``[n, n_labels]``."""
        name = self._head_name(head)
        labels = self._heads[name]
        embeddings = self.embed(texts)
        label_vectors = self.embed([label.replace("_", " ") for label in labels])
        scores = embeddings @ label_vectors.T
        for i, text in enumerate(texts):
            words = set(_WORD.findall(text.lower()))
            for j, label in enumerate(labels):
                if words & set(_WORD.findall(label.lower().replace("_", " "))):
                    scores[i, j] += 1.0
        scores *= 5.0
        if name in self._multi_label:
            return np.asarray(1.0 / (1.0 + np.exp(-scores)), dtype=np.float32)
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return {name: self.classify(texts, name) for name in self._heads}

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        labels = self._heads[self._head_name(head)]
        return [labels[i] for i in self.classify(texts, head).argmax(axis=1)]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine similarity of the two texts of each pair."""
        return pair_cosines(pairs, self.embed)

    def _head_name(self, head: str | None) -> str:
        if not self._heads:
            raise ConfigError("head", head, "this FakePredictor has no labels")
        if head is None:
            return next(iter(self._heads))
        if head not in self._heads:
            raise ConfigError("head", head, f"unknown head; have {list(self._heads)}")
        return head
