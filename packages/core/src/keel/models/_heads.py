"""The linear classification head (numpy) and its safetensors files.

Training, inference and compression share this one definition. Temperature rule: a
calibration temperature belongs to its head and divides that head's logits before the
activation (``1.0`` = none). Each head's logits have their own scale, so one
temperature per model would be wrong for every head but the one it was fitted on; in
``keel.json`` the default (first) head's temperature is ``meta.temperature`` and a named
head's is ``meta.heads[name]["temperature"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from keel.errors import ArtifactError
from keel.models.artifact import head_file_name


# eq=False: array fields cannot compare by value (numpy == is elementwise).
@dataclass(frozen=True, eq=False)
class LinearHead:
    """``probs = activation((x @ weight.T + bias) / temperature)``.

    Attributes:
        name: head name (``"default"`` for ``head.safetensors``).
        labels: label names, one per output row of ``weight``.
        weight: float32 ``[n_labels, dim]``.
        bias: float32 ``[n_labels]``.
        multi_label: sigmoid per label instead of a softmax over labels.
        temperature: calibration temperature dividing the logits (1.0 = none).
    """

    name: str
    labels: list[str]
    weight: np.ndarray
    bias: np.ndarray
    multi_label: bool = False
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or self.weight.shape[0] != len(self.labels):
            raise ArtifactError(
                f"head {self.name!r}: weight shape {self.weight.shape} does not match "
                f"{len(self.labels)} labels"
            )
        if self.bias.shape != (len(self.labels),):
            raise ArtifactError(f"head {self.name!r}: bias shape {self.bias.shape} is wrong")
        if self.temperature <= 0:
            raise ArtifactError(f"head {self.name!r}: temperature {self.temperature} must be > 0")

    @property
    def dim(self) -> int:
        """Size of the embedding the head reads."""
        return int(self.weight.shape[1])

    def with_temperature(self, temperature: float | None) -> LinearHead:
        """A copy of this head calibrated with ``temperature`` (``None`` = 1.0)."""
        return replace(self, temperature=float(temperature) if temperature else 1.0)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw scores ``[n, n_labels]`` (before temperature and activation)."""
        return np.asarray(features @ self.weight.T + self.bias, dtype=np.float32)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Softmax (or sigmoid for multi-label) of the temperature-scaled logits."""
        scaled = self.logits(features) / np.float32(self.temperature)
        if self.multi_label:
            return np.asarray(1.0 / (1.0 + np.exp(-scaled)), dtype=np.float32)
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)


def head_file(artifact_dir: Path, name: str) -> Path:
    """File holding head ``name`` in an artifact folder."""
    return artifact_dir / head_file_name(name)


def read_head_tensors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``weight`` and ``bias`` from a head safetensors file as float32 arrays."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read head weights: {exc}") from exc
    if "weight" not in tensors or "bias" not in tensors:
        raise ArtifactError(f"{path}: expected tensors 'weight' and 'bias', got {sorted(tensors)}")
    return tensors["weight"].astype(np.float32), tensors["bias"].astype(np.float32)


def write_head_tensors(path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """Write a head as ``weight`` / ``bias`` float32 tensors."""
    from safetensors.numpy import save_file

    save_file(
        {
            "weight": np.ascontiguousarray(weight, dtype=np.float32),
            "bias": np.ascontiguousarray(bias, dtype=np.float32),
        },
        str(path),
    )
