"""A static-embedding predictor (model2vec table + numpy linear heads) and the cascade
that answers confident rows with it and sends the rest to a transformer predictor.

Folder layout of a static tier (``keel.compression.static_tier`` writes it):

* model2vec's files (``model.safetensors``, ``tokenizer.json``, ``config.json``,
  ``modules.json``), loaded with ``model2vec.StaticModel.from_pretrained``;
* ``head-<name>.safetensors`` per head (Keel's head format);
* ``static_tier.json``: head labels, the cascade thresholds and how they were chosen.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ConfigError
from keel.inference._encoder_base import l2_normalize, pair_cosines
from keel.models._heads import LinearHead, read_head_tensors

TIER_FILE = "static_tier.json"


def static_head_file(folder: Path, name: str) -> Path:
    """``head-<name>.safetensors`` of a static tier."""
    return Path(folder) / f"head-{name}.safetensors"


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("texts", texts[:40], "pass a list of strings, not one string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise ConfigError(f"texts[{i}]", text, "must be a string")
    return out


class StaticPredictor:
    """Classification heads over a static (model2vec) embedding: a token-table lookup
    and a mean per text, no transformer pass. Thread-safe (the tokenizer runs under a
    lock)."""

    backend = "static"
    variant = "static"

    def __init__(self, model: Any, heads: Mapping[str, LinearHead]) -> None:
        for head in heads.values():
            if head.dim != int(model.dim):
                raise ArtifactError(
                    f"static head {head.name!r} expects dim {head.dim}, table has {model.dim}"
                )
        self.model = model
        self._heads = dict(heads)
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    @property
    def heads(self) -> list[str]:
        return list(self._heads)

    @property
    def labels(self) -> list[str]:
        return list(next(iter(self._heads.values())).labels) if self._heads else []

    def head_labels(self, head: str | None = None) -> list[str]:
        return list(self._head(head).labels)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings ``[n, dim]`` (zero rows for texts without a
        known token)."""
        batch = _texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(batch, show_progress_bar=False, use_multiprocessing=False)
        return l2_normalize(np.asarray(vectors, dtype=np.float32).reshape(len(batch), self.dim))

    features = embed

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine similarity of each ``(query, passage)`` pair (no prefixes: one table)."""
        return pair_cosines(pairs, self.embed)

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        return self._head(head).probabilities(self.embed(texts))

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        if not self._heads:
            raise ArtifactError("this static model has no classification head")
        features = self.embed(texts)
        return {name: head.probabilities(features) for name, head in self._heads.items()}

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        chosen = self._head(head)
        return [chosen.labels[i] for i in chosen.probabilities(self.embed(texts)).argmax(axis=1)]

    def _head(self, head: str | None) -> LinearHead:
        if not self._heads:
            raise ArtifactError("this static model has no classification head")
        if head is None:
            return next(iter(self._heads.values()))
        if head not in self._heads:
            raise ConfigError("head", head, f"unknown head; this model has {self.heads}")
        return self._heads[head]


def read_tier_meta(folder: str | Path) -> dict[str, Any]:
    """``static_tier.json`` of a static tier folder.

    Raises:
        ArtifactError: the file is missing or not JSON.
    """
    path = Path(folder) / TIER_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: not a static tier ({TIER_FILE} missing)") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("heads"), dict):
        raise ArtifactError(f"{path}: no 'heads' mapping")
    return meta


def load_static_predictor(folder: str | Path) -> StaticPredictor:
    """Load a static tier's table (``model2vec.StaticModel``, from the local folder: no
    download) and its heads.

    Raises:
        ArtifactError: files missing or inconsistent.
    """
    from model2vec import StaticModel

    root = Path(folder)
    meta = read_tier_meta(root)
    try:
        model = StaticModel.from_pretrained(root, force_download=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{root}: cannot load the static table: {exc}") from exc
    heads = {}
    for name, spec in meta["heads"].items():
        weight, bias = read_head_tensors(static_head_file(root, name))
        heads[name] = LinearHead(
            name=name,
            labels=list(spec["labels"]),
            weight=weight,
            bias=bias,
            multi_label=False,
        )
    return StaticPredictor(model, heads)


def confident_rows(
    probabilities: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> np.ndarray:
    """Boolean mask of the rows whose top probability reaches its head's threshold on
    every thresholded head."""
    mask: np.ndarray | None = None
    for head, threshold in thresholds.items():
        top = np.asarray(probabilities[head]).max(axis=1) >= threshold
        mask = top if mask is None else mask & top
    if mask is None:
        raise ConfigError("thresholds", {}, "give at least one head's threshold")
    return mask


class CascadePredictor:
    """``classify_heads`` in two tiers: the static heads answer the rows they are sure
    of (top probability >= the head's threshold on every head), the transformer
    predictor answers the others, in one batch.

    Args:
        static: the first tier (``StaticPredictor``).
        fallback: the transformer predictor; every other call is delegated to it.
        thresholds: ``{head: minimum top probability}`` (every head of the static tier).
        on_route: called with ``(static_rows, fallback_rows)`` after each batch (metrics).
    """

    def __init__(
        self,
        static: Any,
        fallback: Any,
        thresholds: Mapping[str, float],
        *,
        on_route: Callable[[int, int], None] | None = None,
    ) -> None:
        missing = sorted(set(static.heads) - set(thresholds))
        if missing:
            raise ConfigError("thresholds", dict(thresholds), f"lacks heads {missing}")
        unknown = sorted(set(static.heads) - set(fallback.heads))
        if unknown:
            raise ConfigError("static", static.heads, f"heads {unknown} not in the fallback")
        for head in static.heads:
            if list(static.head_labels(head)) != list(fallback.head_labels(head)):
                raise ConfigError(
                    f"static[{head!r}]", head, "label order differs from the fallback"
                )
        for head, value in thresholds.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"thresholds[{head!r}]", value, "must be in [0, 1]")
        self.static = static
        self.fallback = fallback
        self.thresholds = {h: float(v) for h, v in thresholds.items()}
        self.on_route = on_route
        self.static_rows = 0
        self.fallback_rows = 0
        self._count_lock = threading.Lock()

    @property
    def static_share(self) -> float:
        """Share of the rows classified so far that the static tier answered."""
        total = self.static_rows + self.fallback_rows
        return self.static_rows / total if total else 0.0

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Probabilities of every static head: static rows from the static tier, the
        others from the fallback (one call)."""
        batch = _texts(texts)
        static = self.static.classify_heads(batch)
        if not batch:
            return static
        keep = confident_rows(static, self.thresholds)
        rest = np.flatnonzero(~keep)
        out = {head: np.array(probs, dtype=np.float32, copy=True) for head, probs in static.items()}
        if len(rest):
            answered = self.fallback.classify_heads([batch[i] for i in rest])
            for head in out:
                out[head][rest] = answered[head]
        n_static = int(keep.sum())
        with self._count_lock:
            self.static_rows += n_static
            self.fallback_rows += len(rest)
        if self.on_route is not None:
            self.on_route(n_static, len(rest))
        return out

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        name = head if head is not None else self.static.heads[0]
        if name not in self.thresholds:
            return np.asarray(self.fallback.classify(texts, head=head))
        return self.classify_heads(texts)[name]

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        name = head if head is not None else self.static.heads[0]
        labels = self.static.head_labels(name) if name in self.thresholds else None
        if labels is None:
            return list(self.fallback.predict_labels(texts, head=head))
        return [labels[i] for i in self.classify(texts, name).argmax(axis=1)]

    def __getattr__(self, name: str) -> Any:
        # embed, dim, heads, labels, variant, ...: the transformer's. (Only called for
        # attributes this class lacks.)
        if name in {"static", "fallback"}:
            raise AttributeError(name)
        return getattr(self.fallback, name)


def load_cascade(
    fallback: Any,
    folder: str | Path,
    *,
    on_route: Callable[[int, int], None] | None = None,
) -> CascadePredictor | None:
    """The cascade of the static tier in ``folder`` over ``fallback``, or None when the
    tier's thresholds say the cascade is off.

    Raises:
        ArtifactError: the tier is unreadable.
    """
    meta = read_tier_meta(folder)
    cascade = meta.get("cascade") or {}
    if not cascade.get("enabled"):
        return None
    return CascadePredictor(
        load_static_predictor(folder), fallback, cascade["thresholds"], on_route=on_route
    )
