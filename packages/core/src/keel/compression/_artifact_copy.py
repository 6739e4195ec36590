"""Derive a new artifact folder from an existing one: copy heads and tokenizer, rewrite meta."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError, ConfigError
from keel.inference._artifact import ENCODER_DIR, read_serving_spec
from keel.models.artifact import ArtifactMeta, write_meta

# Files of an encoder folder that are not weights: tokenizer, configs, pooling.
_WEIGHT_FILES = {"model.safetensors", "pytorch_model.bin", "model.onnx"}


def source_meta(model_dir: Path) -> dict[str, Any]:
    """The source artifact's ``keel.json`` as a dict (validated by the runtime's reader)."""
    spec = read_serving_spec(model_dir)
    if spec.task == "cross_encoder":
        raise ArtifactError(f"{model_dir}: compression handles classifier and encoder artifacts")
    return dict(spec.raw)


def prepare_output(model_dir: Path, out_dir: Path) -> None:
    """Create ``out_dir`` (must differ from ``model_dir``) and copy heads and the model card."""
    if out_dir.resolve() == model_dir.resolve():
        raise ConfigError("out_dir", str(out_dir), "must differ from the source model folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for head in model_dir.glob("head*.safetensors"):
        shutil.copy2(head, out_dir / head.name)


def copy_encoder_without_weights(encoder_dir: Path, target: Path) -> None:
    """Copy tokenizer / config / pooling files of an encoder folder, not its weights."""
    target.mkdir(parents=True, exist_ok=True)
    for item in encoder_dir.iterdir():
        if item.is_file() and item.name not in _WEIGHT_FILES:
            shutil.copy2(item, target / item.name)
        elif item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)


def artifact_size_mb(folder: Path) -> float:
    """Size in MiB of every file in ``folder`` except the model card."""
    total = sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "README.md"
    )
    return round(total / (1024 * 1024), 2)


def write_derived_meta(
    out_dir: Path, meta: dict[str, Any], *, backend: str, variant: str, **config: Any
) -> dict[str, Any]:
    """Write ``keel.json`` for a derived artifact.

    Sets ``backend``, ``variant`` and ``size_mb``, records how it was made under
    ``config["compression"]`` and clears the source's latency numbers (they no longer
    apply). Returns the written dict.
    """
    derived = dict(meta)
    derived["backend"] = backend
    derived["variant"] = variant
    derived["latency_ms"] = {}
    derived["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    settings = dict(derived.get("config") or {})
    history = list(settings.get("compression", []))
    history.append({"variant": variant, **config})
    settings["compression"] = history
    derived["config"] = settings
    derived["size_mb"] = artifact_size_mb(out_dir)
    write_meta(out_dir, ArtifactMeta.from_dict(derived))
    return derived


__all__ = [
    "ENCODER_DIR",
    "artifact_size_mb",
    "copy_encoder_without_weights",
    "prepare_output",
    "source_meta",
    "write_derived_meta",
]
