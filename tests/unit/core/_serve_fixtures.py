"""Small Keel artifacts for the serving tests, written in the documented layout.

The classifier head is a nearest-centroid head over MiniLM embeddings of a few
example texts, so its predictions are meaningful (not random) and variants of the
encoder can be compared against it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

EXAMPLES: dict[str, list[str]] = {
    "card_arrival": [
        "when will my new card arrive",
        "my card has not arrived yet",
        "how long does card delivery take",
        "still waiting for the card you sent",
    ],
    "lost_card": [
        "i lost my card",
        "my card was stolen yesterday",
        "i cannot find my bank card anywhere",
        "someone took my wallet with the card",
    ],
    "refund": [
        "i want my money back for this purchase",
        "how do i get a refund",
        "the merchant has not refunded me",
        "request a refund for a cancelled order",
    ],
    "exchange_rate": [
        "what exchange rate do you use",
        "how much is a euro in dollars today",
        "why was the currency conversion rate so bad",
        "do you charge for converting pounds to euros",
    ],
}
SENTIMENT: dict[str, list[str]] = {
    "negative": ["this is terrible and i am angry", "awful service, very disappointed"],
    "positive": ["great service, thank you so much", "i love how fast this was"],
}


def _copy_encoder(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
        elif item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)


def _centroid_head(embed, examples: dict[str, list[str]], scale: float = 20.0):
    labels = list(examples)
    centroids = []
    for label in labels:
        vectors = embed(examples[label])
        centroid = vectors.mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
    weight = np.stack(centroids).astype(np.float32) * scale
    return labels, weight, np.zeros(len(labels), dtype=np.float32)


def build_classifier_artifact(
    folder: Path, *, multi_head: bool = False, layers: int | None = None
) -> Path:
    """Write a MiniLM classifier artifact (``keel.json``, ``encoder/``, head files).

    ``layers`` keeps only the first N transformer layers (a faster model for the
    compression tests); the centroid head is computed with that encoder.
    """
    from safetensors.numpy import save_file

    from keel.inference import load_predictor
    from keel.models import model_path

    if (folder / "keel.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _copy_encoder(model_path("minilm"), folder / "encoder")
    if layers is not None:
        from transformers import AutoModel

        from keel.compression.pruning import drop_encoder_layers

        model = AutoModel.from_pretrained(str(folder / "encoder"))
        drop_encoder_layers(model, list(range(layers)))
        model.save_pretrained(str(folder / "encoder"))
    base = load_predictor(folder / "encoder")
    labels, weight, bias = _centroid_head(base.embed, EXAMPLES)
    save_file({"weight": weight, "bias": bias}, str(folder / "head.safetensors"))
    heads: dict[str, dict] = {"default": {"labels": labels, "multi_label": False}}
    if multi_head:
        s_labels, s_weight, s_bias = _centroid_head(base.embed, SENTIMENT)
        save_file({"weight": s_weight, "bias": s_bias}, str(folder / "head-sentiment.safetensors"))
        heads["sentiment"] = {"labels": s_labels, "multi_label": False}
    meta = {
        "format": 1,
        "task": "classifier",
        "backend": "torch",
        "labels": labels,
        "multi_label": False,
        "heads": heads,
        "config": {"strategy": "head"},
        "data_fingerprint": None,
        "metrics": {},
        "size_mb": None,
        "latency_ms": {},
        "base_model": "minilm",
        "max_length": 64,
        "normalize": True,
        "temperature": None,
        "created": "2026-01-01T00:00:00+00:00",
        "variant": "fp32",
    }
    (folder / "keel.json").write_text(json.dumps(meta, indent=2))
    return folder


def all_example_texts() -> tuple[list[str], list[str]]:
    """(texts, labels) of every example of the default head."""
    texts = [t for label in EXAMPLES for t in EXAMPLES[label]]
    labels = [label for label in EXAMPLES for _ in EXAMPLES[label]]
    return texts, labels
