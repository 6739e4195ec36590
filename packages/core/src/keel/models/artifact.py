"""The on-disk layout of a Keel model folder and its ``keel.json`` metadata.

One folder per model::

    <dir>/keel.json            ArtifactMeta
    <dir>/encoder/             a sentence-transformers folder (mean pooling)
    <dir>/head.safetensors     default classifier head ("weight" [n_labels, dim], "bias")
    <dir>/head-<name>.safetensors  extra heads of a multi-head classifier
    <dir>/README.md            generated model card
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError

ARTIFACT_FORMAT = 1
META_FILE = "keel.json"
ENCODER_DIR = "encoder"
HEAD_FILE = "head.safetensors"
CARD_FILE = "README.md"
DEFAULT_HEAD = "default"

TASKS = ("classifier", "encoder", "cross_encoder")
BACKENDS = ("torch", "onnx")


def head_file_name(head: str) -> str:
    """File name of a classifier head inside an artifact folder.

    Args:
        head: the head's name; ``"default"`` is stored as ``head.safetensors``.

    Returns:
        ``head.safetensors`` for the default head, else ``head-<name>.safetensors``.
    """
    return HEAD_FILE if head == DEFAULT_HEAD else f"head-{head}.safetensors"


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class ArtifactMeta:
    """Everything ``keel.json`` records about a model folder.

    ``labels``/``multi_label`` describe the default head; ``heads`` lists every
    head (the default one included, under ``"default"``) for multi-head models.
    """

    task: str = "classifier"
    backend: str = "torch"
    labels: list[str] = field(default_factory=list)
    multi_label: bool = False
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    size_mb: float | None = None
    latency_ms: dict[str, Any] = field(default_factory=dict)
    base_model: str = "minilm"
    max_length: int = 64
    normalize: bool = True
    temperature: float | None = None
    created: str = field(default_factory=_now_iso)
    variant: str = "fp32"
    format: int = ARTIFACT_FORMAT

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ArtifactError(f"task={self.task!r}: use one of {list(TASKS)}")
        if self.backend not in BACKENDS:
            raise ArtifactError(f"backend={self.backend!r}: use one of {list(BACKENDS)}")
        if self.format != ARTIFACT_FORMAT:
            raise ArtifactError(
                f"format={self.format!r}: this Keel reads artifact format {ARTIFACT_FORMAT}"
            )
        if self.max_length <= 0:
            raise ArtifactError(f"max_length={self.max_length!r}: must be positive")

    @property
    def head_names(self) -> list[str]:
        """Names of the classifier heads (``["default"]`` for a plain classifier)."""
        if self.heads:
            return list(self.heads)
        return [DEFAULT_HEAD] if self.task == "classifier" else []

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict written to ``keel.json`` (``format`` first)."""
        data = asdict(self)
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactMeta:
        """Build from a ``keel.json`` dict; unknown keys are kept out, wrong types rejected.

        Raises:
            ArtifactError: a required key has the wrong type or value.
        """
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ArtifactError(f"bad keel.json content: {exc}") from exc


def write_meta(directory: str | Path, meta: ArtifactMeta) -> Path:
    """Write ``keel.json`` into ``directory`` (created if needed).

    Args:
        directory: the model folder.
        meta: the metadata to write.

    Returns:
        The path of the written ``keel.json``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / META_FILE
    path.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_meta(directory: str | Path) -> ArtifactMeta:
    """Read ``keel.json`` from a model folder.

    Args:
        directory: the model folder.

    Returns:
        The parsed metadata.

    Raises:
        ArtifactError: the folder or its ``keel.json`` is missing, is not valid JSON,
            or holds bad values; the message names the file.
    """
    folder = Path(directory)
    path = folder / META_FILE
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: model folder not found")
    if not path.is_file():
        raise ArtifactError(f"{path}: not found; {folder} is not a Keel model folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return ArtifactMeta.from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc


def folder_size_mb(directory: str | Path) -> float:
    """Total size of the files under ``directory`` in MiB (rounded to 0.1)."""
    total = sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
    return round(total / (1024 * 1024), 1)
