"""``load_predictor``: open any Keel artifact, sentence-transformers folder or packaged model."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from keel.errors import ArtifactError, ConfigError, ModelNotFoundError
from keel.inference._artifact import (
    ENCODER_DIR,
    META_FILE,
    ONNX_FILE,
    TORCH_INT8_FILE,
    load_heads,
    read_serving_spec,
)
from keel.inference._protocol import Predictor
from keel.inference._static import TIER_FILE as STATIC_TIER_FILE
from keel.models._prefixes import read_prefixes


class Backend(StrEnum):
    """Which runtime executes the encoder."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"


def _parse_backend(backend: str | Backend) -> Backend:
    try:
        return Backend(backend)
    except ValueError:
        raise ConfigError("backend", backend, f"use one of {[b.value for b in Backend]}") from None


def resolve_model_dir(model: str | Path) -> Path:
    """Folder of ``model``: a packaged name such as ``"minilm"`` / ``"me5-small"`` or a path."""
    from keel.models import is_packaged_model, model_path

    if isinstance(model, str) and is_packaged_model(model):
        return model_path(model)
    folder = Path(model)
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {folder} does not exist")
    return folder


def _sentence_transformers_max_length(folder: Path, fallback: int = 256) -> int:
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text()).get("max_seq_length") or fallback)
        except (ValueError, json.JSONDecodeError):
            return fallback
    return fallback


def _set_torch_threads(num_threads: int | None) -> None:
    if num_threads is not None:
        import torch

        # torch's intra-op pool is process-wide: this affects every torch model.
        torch.set_num_threads(int(num_threads))


def load_predictor(
    model_dir: str | Path,
    backend: str | Backend = "auto",
    num_threads: int | None = None,
    cache_size: int = 0,
    *,
    device: str | None = None,
    batch_size: int = 64,
) -> Predictor:
    """Load a model for inference.

    Args:
        model_dir: a Keel artifact folder (with ``keel.json``), a static table's
            folder (model2vec format + ``static_tier.json``, e.g. from
            ``keel.compression.train_static``: a ``StaticPredictor``), a bare
            sentence-transformers folder, or a packaged model name (``"minilm"``);
            the last two give an embedding-only predictor.
        backend: ``"auto"`` (the artifact's own backend), ``"torch"`` or ``"onnx"``.
        num_threads: CPU threads for the encoder (torch: process-wide setting;
            onnx: this session only). None keeps the library default.
        cache_size: entries of the per-text LRU embedding cache (0 = off).
        device: torch device (``"cpu"``, ``"cuda"``); torch backend only.
        batch_size: texts per encoder forward pass.

    Returns:
        A thread-safe ``Predictor``.

    Raises:
        ModelNotFoundError: the folder or packaged model does not exist.
        ArtifactError: the folder is not a loadable model, or lacks the files of
            the requested backend (for example ``model.onnx``: run ``keel export``).
        ConfigError: a bad ``backend`` / ``num_threads`` / ``cache_size``.
    """
    chosen = _parse_backend(backend)
    if num_threads is not None and num_threads < 1:
        raise ConfigError("num_threads", num_threads, "must be >= 1 or None")
    if cache_size < 0:
        raise ConfigError("cache_size", cache_size, "must be >= 0")
    folder = resolve_model_dir(model_dir)
    torch_device = device or "cpu"
    if not (folder / META_FILE).is_file() and (folder / STATIC_TIER_FILE).is_file():
        # A static (model2vec) table: a lookup and a mean, no threads, cache or device.
        from keel.inference._static import load_static_predictor

        if chosen is Backend.ONNX:
            raise ArtifactError(f"{folder}: a static table has no ONNX backend")
        return load_static_predictor(folder)
    if not (folder / META_FILE).is_file():
        return _load_bare_encoder(folder, chosen, num_threads, cache_size, torch_device, batch_size)

    spec = read_serving_spec(folder)
    effective = Backend(spec.backend) if chosen is Backend.AUTO else chosen
    if spec.task == "cross_encoder":
        if effective is Backend.ONNX:
            raise ArtifactError(f"{folder}: cross-encoders run on the torch backend only")
        return _load_cross_encoder(folder, spec.max_length, spec.variant, num_threads, torch_device)

    heads = load_heads(folder, spec)
    if effective is Backend.ONNX:
        from keel.inference._onnx_backend import OnnxEncoderPredictor, create_session

        onnx_file = folder / ONNX_FILE
        if not onnx_file.is_file():
            raise ArtifactError(
                f"{folder}: no {ONNX_FILE}; export it first with "
                f"`keel export --model {folder} --out DIR`"
            )
        from keel.inference._torch_backend import load_tokenizer

        dim = int(spec.raw.get("dim") or 0) or _config_hidden_size(folder / ENCODER_DIR)
        return OnnxEncoderPredictor(
            create_session(onnx_file, num_threads),
            load_tokenizer(folder / ENCODER_DIR),
            dim=dim,
            heads=heads,
            max_length=spec.max_length,
            normalize_features=spec.normalize,
            cache_size=cache_size,
            batch_size=batch_size,
            variant=spec.variant if spec.backend == "onnx" else "onnx",
            prefixes=read_prefixes(folder / ENCODER_DIR),
        )

    from keel.inference._torch_backend import (
        TorchEncoderPredictor,
        load_tokenizer,
        load_torch_encoder,
    )

    _set_torch_threads(num_threads)
    int8_state = folder / TORCH_INT8_FILE
    if spec.variant == "torch-int8" and not int8_state.is_file():
        raise ArtifactError(f"{folder}: variant torch-int8 but {TORCH_INT8_FILE} is missing")
    if not int8_state.is_file() and not _has_weights(folder / ENCODER_DIR):
        raise ArtifactError(
            f"{folder}: no torch weights in {ENCODER_DIR}/ (an ONNX-only artifact? "
            "load it with backend='onnx')"
        )
    if int8_state.is_file() and torch_device != "cpu":
        raise ConfigError("device", torch_device, "a torch-int8 model runs on the CPU only")
    model = load_torch_encoder(
        folder / ENCODER_DIR, int8_state if int8_state.is_file() else None, torch_device
    )
    return TorchEncoderPredictor(
        model,
        load_tokenizer(folder / ENCODER_DIR),
        heads=heads,
        max_length=spec.max_length,
        normalize_features=spec.normalize,
        cache_size=cache_size,
        batch_size=batch_size,
        variant=spec.variant,
        device=torch_device,
        prefixes=read_prefixes(folder / ENCODER_DIR),
    )


def _has_weights(encoder_dir: Path) -> bool:
    return any(
        (encoder_dir / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")
    )


def _config_hidden_size(encoder_dir: Path) -> int:
    config = encoder_dir / "config.json"
    try:
        return int(json.loads(config.read_text())["hidden_size"])
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{config}: cannot read hidden_size: {exc}") from exc


def _load_bare_encoder(
    folder: Path,
    backend: Backend,
    num_threads: int | None,
    cache_size: int,
    device: str,
    batch_size: int,
) -> Predictor:
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"{folder} is neither a Keel artifact ({META_FILE}) nor a sentence-transformers "
            "folder (config.json)"
        )
    if backend is Backend.ONNX:
        raise ArtifactError(
            f"{folder}: a bare sentence-transformers folder runs on torch; export it to ONNX "
            "first with `keel export`"
        )
    from keel.inference._torch_backend import (
        TorchEncoderPredictor,
        load_tokenizer,
        load_torch_encoder,
    )

    _set_torch_threads(num_threads)
    return TorchEncoderPredictor(
        load_torch_encoder(folder, None, device),
        load_tokenizer(folder),
        heads={},
        max_length=_sentence_transformers_max_length(folder),
        normalize_features=True,
        cache_size=cache_size,
        batch_size=batch_size,
        variant="fp32",
        device=device,
        prefixes=read_prefixes(folder),
    )


def _load_cross_encoder(
    folder: Path, max_length: int, variant: str, num_threads: int | None, device: str
) -> Predictor:
    from transformers import AutoModelForSequenceClassification

    from keel.inference._torch_backend import TorchCrossEncoderPredictor, load_tokenizer

    _set_torch_threads(num_threads)
    encoder_dir = folder / ENCODER_DIR
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(encoder_dir), local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{encoder_dir}: cannot load the cross-encoder: {exc}") from exc
    model.eval().to(device)
    return TorchCrossEncoderPredictor(
        model,
        load_tokenizer(encoder_dir),
        max_length=max_length,
        device=device,
        variant=variant,
        prefixes=read_prefixes(encoder_dir),
    )
