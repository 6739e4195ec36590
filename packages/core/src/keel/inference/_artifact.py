"""Reads the parts of a Keel artifact folder that the runtime needs (``keel.json`` + heads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError, ModelNotFoundError
from keel.models._heads import LinearHead, head_file, read_head_tensors
from keel.models.artifact import DEFAULT_HEAD

META_FILE = "keel.json"
ENCODER_DIR = "encoder"
ONNX_FILE = "model.onnx"
TORCH_INT8_FILE = "encoder-int8.pt"


@dataclass(frozen=True)
class ServingSpec:
    """What the runtime reads from ``keel.json``.

    Attributes:
        task: ``classifier``, ``encoder`` or ``cross_encoder``.
        backend: ``torch`` or ``onnx``.
        variant: ``fp32``, ``torch-int8``, ``onnx-fp32``, ``onnx-int8`` ... (free text).
        max_length: tokenizer truncation length.
        normalize: the heads read the L2-normalised embedding.
        temperature: calibration temperature of the default head (None = 1).
        raw: the whole ``keel.json`` as read.
    """

    task: str
    backend: str
    variant: str
    max_length: int
    normalize: bool
    temperature: float | None
    labels: list[str] = field(default_factory=list)
    multi_label: bool = False
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def read_serving_spec(artifact_dir: Path) -> ServingSpec:
    """Parse ``<artifact_dir>/keel.json`` with ``keel.models.read_meta``.

    Raises:
        ModelNotFoundError: the folder or its ``keel.json`` does not exist.
        ArtifactError: the file is not valid JSON or holds bad values.
    """
    from keel.models.artifact import read_meta

    if not (artifact_dir / META_FILE).is_file():
        raise ModelNotFoundError(f"{artifact_dir} is not a Keel artifact: {META_FILE} is missing")
    meta = read_meta(artifact_dir)
    return ServingSpec(
        task=meta.task,
        backend=meta.backend,
        variant=str(meta.variant or "fp32"),
        max_length=int(meta.max_length),
        normalize=bool(meta.normalize),
        temperature=float(meta.temperature) if meta.temperature is not None else None,
        labels=[str(label) for label in meta.labels],
        multi_label=bool(meta.multi_label),
        heads=dict(meta.heads),
        raw=meta.to_dict(),
    )


def load_heads(artifact_dir: Path, spec: ServingSpec) -> dict[str, LinearHead]:
    """Load every linear head of an artifact, the default head first.

    ``head.safetensors`` is the ``"default"`` head (labels from ``meta.labels``);
    each entry of ``meta.heads`` is read from ``head-<name>.safetensors``.
    """
    heads: dict[str, LinearHead] = {}
    default_path = head_file(artifact_dir, DEFAULT_HEAD)
    if default_path.is_file():
        weight, bias = read_head_tensors(default_path)
        heads[DEFAULT_HEAD] = LinearHead(
            name=DEFAULT_HEAD,
            labels=list(spec.labels),
            weight=weight,
            bias=bias,
            multi_label=spec.multi_label,
            temperature=spec.temperature or 1.0,
        )
    for name, head_spec in spec.heads.items():
        if name in heads:
            continue
        path = head_file(artifact_dir, name)
        if not path.is_file():
            raise ArtifactError(
                f"{artifact_dir}: head {name!r} is declared but {path.name} is missing"
            )
        weight, bias = read_head_tensors(path)
        temperature = head_spec.get("temperature")
        heads[name] = LinearHead(
            name=name,
            labels=[str(label) for label in head_spec.get("labels") or []],
            weight=weight,
            bias=bias,
            multi_label=bool(head_spec.get("multi_label", False)),
            temperature=float(temperature) if temperature else 1.0,
        )
    if spec.task == "classifier" and not heads:
        raise ArtifactError(f"{artifact_dir}: a classifier artifact needs head.safetensors")
    return heads
