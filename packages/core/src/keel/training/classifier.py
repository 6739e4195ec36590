"""``TextClassifier``: encoder -> pooled embedding -> linear head(s); save and load.

A ``TextClassifier`` is also a ``keel.inference.Predictor`` (``labels``, ``heads``,
``dim``, ``embed``, ``classify``, ``classify_heads``, ``predict_labels``,
``score_pairs``), so code written for a loaded predictor takes a freshly trained model.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.errors import ArtifactError, KeelError
from keel.models._heads import LinearHead
from keel.models.artifact import (
    DEFAULT_HEAD,
    ENCODER_DIR,
    ArtifactMeta,
    folder_size_mb,
    head_file_name,
    read_meta,
    write_meta,
)
from keel.training._encoder import embed_texts, embedding_dim

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TextClassifier:
    """A trained text classifier with one or more heads over one shared encoder.

    The first head is the default one (used when ``head`` is not given). Implements the
    ``keel.inference.Predictor`` protocol; ``linear_heads`` holds the head weights.
    Thread-safe: encoder passes run under a lock.
    """

    def __init__(
        self,
        encoder: SentenceTransformer,
        heads: dict[str, LinearHead],
        *,
        max_length: int = 64,
        normalize: bool = True,
        base_model: str = "minilm",
        config: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        metrics: dict[str, Any] | None = None,
        data_fingerprint: str | None = None,
        temperature: float | None = None,
        device: str = "cpu",
    ) -> None:
        if not heads:
            raise KeelError("a TextClassifier needs at least one head")
        self.encoder = encoder
        # Heads are keyed by the dict key; their ``name`` follows it.
        self.linear_heads: dict[str, LinearHead] = {
            name: head if head.name == name else dataclasses.replace(head, name=name)
            for name, head in heads.items()
        }
        self.max_length = max_length
        self.normalize = normalize
        self.base_model = base_model
        self.config = dict(config or {})
        self.history: list[dict[str, Any]] = list(history or [])
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.data_fingerprint = data_fingerprint
        if temperature is not None:
            self.temperature = temperature
        self.device = device
        self._lock = threading.Lock()

    # -- introspection -------------------------------------------------------------------
    @property
    def head_names(self) -> list[str]:
        """Names of the heads; the first is the default."""
        return list(self.linear_heads)

    @property
    def heads(self) -> list[str]:
        """Names of the heads, default head first (``Predictor.heads``)."""
        return self.head_names

    def _head(self, head: str | None) -> LinearHead:
        name = head or self.head_names[0]
        if name not in self.linear_heads:
            raise KeelError(f"unknown head {name!r}; this model has {self.head_names}")
        return self.linear_heads[name]

    @property
    def temperature(self) -> float | None:
        """Calibration temperature of the default head (``None`` when uncalibrated)."""
        value = self._head(None).temperature
        return None if value == 1.0 else value

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        name = self.head_names[0]
        self.linear_heads[name] = self.linear_heads[name].with_temperature(value)

    @property
    def dim(self) -> int:
        """Size of the embedding vectors (``Predictor.dim``)."""
        return embedding_dim(self.encoder)

    @property
    def labels(self) -> list[str]:
        """Labels of the default head, in probability-column order."""
        return list(self._head(None).labels)

    @property
    def multi_label(self) -> bool:
        """Whether the default head is multi-label (sigmoid per label)."""
        return self._head(None).multi_label

    # -- inference -----------------------------------------------------------------------
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Pooled sentence embeddings ``[n, dim]`` float32 (L2-normalised when ``normalize``)."""
        if isinstance(texts, str):
            raise KeelError("texts: pass a list of strings, not one string")
        if not texts:
            return np.zeros((0, embedding_dim(self.encoder)), dtype=np.float32)
        with self._lock:
            return embed_texts(
                self.encoder,
                list(texts),
                max_length=self.max_length,
                batch_size=batch_size,
                device=self.device,
                normalize=self.normalize,
            )

    def predict_proba(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Class probabilities ``[n, n_labels]`` of one head (softmax, or sigmoid if multi-label)."""
        return self._head(head).probabilities(self.embed(texts))

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Class probabilities ``[n, n_labels]`` of ``head`` (``Predictor.classify``)."""
        return self.predict_proba(texts, head)

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        """Top-1 label of each text, also for multi-label heads (``Predictor.predict_labels``)."""
        chosen = self._head(head)
        probs = chosen.probabilities(self.embed(texts))
        return [chosen.labels[j] for j in probs.argmax(axis=1)]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine similarity of each ``(query, passage)`` pair (``Predictor.score_pairs``)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        left = self.embed([a for a, _ in pairs])
        right = self.embed([b for _, b in pairs])
        if not self.normalize:
            left = left / np.maximum(np.linalg.norm(left, axis=1, keepdims=True), 1e-12)
            right = right / np.maximum(np.linalg.norm(right, axis=1, keepdims=True), 1e-12)
        return np.asarray((left * right).sum(axis=1), dtype=np.float32)

    def predict_logits(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        """Raw head scores ``[n, n_labels]`` (before temperature and softmax)."""
        return self._head(head).logits(self.embed(texts))

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Probabilities of every head from one encoder pass."""
        embeddings = self.embed(texts)
        return {name: h.probabilities(embeddings) for name, h in self.linear_heads.items()}

    def predict(
        self, texts: Sequence[str], head: str | None = None, threshold: float = 0.5
    ) -> list[str] | list[list[str]]:
        """Predicted label per text; a list of labels (probability >= threshold) if multi-label."""
        chosen = self._head(head)
        probs = chosen.probabilities(self.embed(texts))
        if chosen.multi_label:
            return [[chosen.labels[j] for j in np.flatnonzero(row >= threshold)] for row in probs]
        return [chosen.labels[j] for j in probs.argmax(axis=1)]

    # -- persistence ---------------------------------------------------------------------
    def to_meta(self) -> ArtifactMeta:
        """The ``keel.json`` content describing this classifier."""
        first = self._head(None)
        return ArtifactMeta(
            task="classifier",
            labels=list(first.labels),
            multi_label=first.multi_label,
            heads={name: _head_entry(h) for name, h in self.linear_heads.items()},
            config=self.config,
            data_fingerprint=self.data_fingerprint,
            metrics=self.metrics,
            base_model=self.base_model,
            max_length=self.max_length,
            normalize=self.normalize,
            temperature=self.temperature,
        )

    def save(self, directory: str | Path, *, measure_latency: bool = True) -> Path:
        """Save as a Keel artifact folder (encoder/, head files, keel.json, README.md).

        Args:
            directory: target folder (created; existing files are overwritten).
            measure_latency: time batch-1 and batch-32 predictions and record them.

        Returns:
            The folder.
        """
        from safetensors.numpy import save_file

        from keel.models._card import write_model_card

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.max_seq_length = self.max_length
        self.encoder.save(str(folder / ENCODER_DIR))
        for index, (name, h) in enumerate(self.linear_heads.items()):
            tensors = {
                "weight": np.ascontiguousarray(h.weight),
                "bias": np.ascontiguousarray(h.bias),
            }
            save_file(tensors, str(folder / head_file_name(name)))
            if index == 0 and name != DEFAULT_HEAD:
                # The first head is the default one: readers that know no head names use it.
                save_file(tensors, str(folder / head_file_name(DEFAULT_HEAD)))
        meta = self.to_meta()
        if measure_latency:
            meta.latency_ms = self._measure_latency()
        write_meta(folder, meta)
        meta.size_mb = folder_size_mb(folder)
        write_meta(folder, meta)
        write_model_card(folder, meta, history=self.history)
        return folder

    def _measure_latency(self) -> dict[str, float]:
        text = "I would like to know why my card payment was declined at the shop today"
        self.predict_proba([text])  # warm-up
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            self.predict_proba([text])
            timings.append((time.perf_counter() - started) * 1000)
        batch = [text] * 32
        started = time.perf_counter()
        self.predict_proba(batch)
        batch_ms = (time.perf_counter() - started) * 1000
        return {
            "p50_batch1": round(float(np.percentile(timings, 50)), 2),
            "p95_batch1": round(float(np.percentile(timings, 95)), 2),
            "batch32": round(batch_ms, 2),
            "device": self.device,  # type: ignore[dict-item]
        }

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> TextClassifier:
        """Load a classifier artifact saved by ``save``.

        Raises:
            ArtifactError: not a classifier folder, or a head file is missing or bad.
        """
        from safetensors.numpy import load_file
        from sentence_transformers import SentenceTransformer

        from keel.training._runtime import pick_device

        folder = Path(directory)
        meta = read_meta(folder)
        if meta.task != "classifier":
            raise ArtifactError(f"{folder}: task is {meta.task!r}, not 'classifier'")
        if meta.backend != "torch":
            raise ArtifactError(
                f"{folder}: backend {meta.backend!r}; TextClassifier loads torch artifacts "
                "(use keel.inference.load_predictor for others)"
            )
        encoder_dir = folder / ENCODER_DIR
        if not (encoder_dir / "modules.json").is_file():
            raise ArtifactError(f"{encoder_dir}: missing sentence-transformers encoder")
        run_device = pick_device(device)
        encoder = SentenceTransformer(str(encoder_dir), device=run_device, local_files_only=True)
        heads_meta = meta.heads or {
            DEFAULT_HEAD: {"labels": meta.labels, "multi_label": meta.multi_label}
        }
        heads: dict[str, LinearHead] = {}
        for name, info in heads_meta.items():
            path = folder / head_file_name(name)
            if not path.is_file():
                raise ArtifactError(f"{path}: head file missing")
            try:
                tensors = load_file(str(path))
                weight, bias = tensors["weight"], tensors["bias"]
            except Exception as exc:  # safetensors raises several types
                raise ArtifactError(f"{path}: cannot read head ({exc})") from exc
            if weight.shape[0] != len(info["labels"]):
                raise ArtifactError(
                    f"{path}: {weight.shape[0]} rows but {len(info['labels'])} labels in keel.json"
                )
            temperature = info.get("temperature")
            if temperature is None and not heads:
                temperature = meta.temperature  # the default head's, as in keel.json
            heads[name] = LinearHead(
                name=name,
                labels=list(info["labels"]),
                weight=np.asarray(weight, dtype=np.float32),
                bias=np.asarray(bias, dtype=np.float32),
                multi_label=bool(info["multi_label"]),
                temperature=float(temperature) if temperature else 1.0,
            )
        return cls(
            encoder,
            heads,
            max_length=meta.max_length,
            normalize=meta.normalize,
            base_model=meta.base_model,
            config=meta.config,
            metrics=meta.metrics,
            data_fingerprint=meta.data_fingerprint,
            device=run_device,
        )


def _head_entry(head: LinearHead) -> dict[str, Any]:
    """A head's ``keel.json`` entry (its temperature only when calibrated)."""
    entry: dict[str, Any] = {"labels": list(head.labels), "multi_label": head.multi_label}
    if head.temperature != 1.0:
        entry["temperature"] = head.temperature
    return entry
