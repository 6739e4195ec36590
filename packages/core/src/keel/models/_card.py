"""Model card (``README.md``) generated into every artifact folder from its ``keel.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keel.models.artifact import CARD_FILE, ArtifactMeta

_USAGE = {
    "classifier": (
        "```python\n"
        "from keel.training import TextClassifier\n"
        "model = TextClassifier.load('{dir}')\n"
        "model.predict(['my card was declined'])\n"
        "```\n"
    ),
    "encoder": (
        "```python\n"
        "from sentence_transformers import SentenceTransformer\n"
        "model = SentenceTransformer('{dir}/encoder')\n"
        "model.encode(['a query'], normalize_embeddings=True)\n"
        "```\n"
    ),
    "cross_encoder": (
        "```python\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "model = AutoModelForSequenceClassification.from_pretrained('{dir}/encoder')\n"
        "tokenizer = AutoTokenizer.from_pretrained('{dir}/encoder')\n"
        "```\n"
    ),
}


def render_model_card(
    meta: ArtifactMeta, directory: str = ".", history: list[dict[str, Any]] | None = None
) -> str:
    """Markdown model card: task, labels, training config, metrics, size, latency, usage."""
    lines = [
        f"# Keel {meta.task.replace('_', '-')} model",
        "",
        f"- base model: `{meta.base_model}`; variant `{meta.variant}`; backend `{meta.backend}`",
        f"- created: {meta.created}",
        f"- max length: {meta.max_length} tokens; normalised embeddings: {meta.normalize}",
        f"- size: {meta.size_mb if meta.size_mb is not None else 'n/a'} MB",
        f"- training data fingerprint: `{meta.data_fingerprint or 'n/a'}`",
    ]
    if meta.temperature:
        lines.append(f"- calibration temperature: {meta.temperature:.4f}")
    if meta.task == "classifier":
        lines += ["", "## Heads", "", "| head | labels | multi-label |", "| --- | --- | --- |"]
        heads = meta.heads or {"default": {"labels": meta.labels, "multi_label": meta.multi_label}}
        for name, info in heads.items():
            shown = ", ".join(info["labels"][:12]) + (" ..." if len(info["labels"]) > 12 else "")
            lines.append(f"| {name} | {len(info['labels'])}: {shown} | {info['multi_label']} |")
    if meta.metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
        for key, value in meta.metrics.items():
            if isinstance(value, int | float):
                lines.append(f"| {key} | {value:.4g} |")
    if meta.latency_ms:
        lines += ["", "## Latency (measured at save time)", ""]
        lines += [f"- {k}: {v}" for k, v in meta.latency_ms.items()]
    if history:
        lines += [
            "",
            "## Training history",
            "",
            "| epoch | train loss | validation |",
            "| --- | --- | --- |",
        ]
        for row in history:
            val = row.get("val_score")
            lines.append(
                f"| {row.get('epoch')} | {row.get('train_loss', float('nan')):.4f} | "
                f"{'' if val is None else f'{val:.4f}'} |"
            )
    lines += [
        "",
        "## Training config",
        "",
        "```json",
        json.dumps(meta.config, indent=2, default=str),
        "```",
        "",
        "## Usage",
        "",
        _USAGE[meta.task].format(dir=directory),
        "Files: `keel.json` (metadata), `encoder/` (a sentence-transformers / transformers "
        "folder)"
        + (", `head*.safetensors` (linear heads)" if meta.task == "classifier" else "")
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    directory: str | Path, meta: ArtifactMeta, history: list[dict[str, Any]] | None = None
) -> Path:
    """Write ``README.md`` into the artifact folder and return its path."""
    path = Path(directory) / CARD_FILE
    path.write_text(render_model_card(meta, str(directory), history), encoding="utf-8")
    return path
