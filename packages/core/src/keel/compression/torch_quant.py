"""PyTorch dynamic int8 quantization of an artifact's encoder."""

from __future__ import annotations

from pathlib import Path

from keel.compression._artifact_copy import (
    ENCODER_DIR,
    copy_encoder_without_weights,
    prepare_output,
    source_meta,
    write_derived_meta,
)
from keel.errors import ArtifactError
from keel.inference._artifact import TORCH_INT8_FILE


def quantize_dynamic_int8(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Quantize every ``nn.Linear`` of the encoder to int8 (dynamic activations).

    The new artifact keeps the tokenizer and config in ``encoder/`` and the quantized
    weights in ``encoder-int8.pt``; ``load_predictor`` rebuilds the architecture,
    quantizes it the same way and loads those weights (torch backend, CPU only).

    Returns:
        ``out_dir``.
    """
    import torch

    from keel.inference._torch_backend import load_torch_encoder, quantize_linear_int8

    source = Path(model_dir)
    target = Path(out_dir)
    meta = source_meta(source)
    if meta.get("backend") != "torch" or (source / TORCH_INT8_FILE).is_file():
        raise ArtifactError(f"{source}: torch int8 quantization needs an fp32 torch artifact")
    prepare_output(source, target)
    copy_encoder_without_weights(source / ENCODER_DIR, target / ENCODER_DIR)
    quantized = quantize_linear_int8(load_torch_encoder(source / ENCODER_DIR))
    torch.save(quantized.state_dict(), str(target / TORCH_INT8_FILE))
    base_variant = str(meta.get("variant") or "fp32")
    variant = "torch-int8" if base_variant in ("fp32", "") else f"{base_variant}+torch-int8"
    # The loader checks for the int8 file, so chained variants (pruned+torch-int8) load too.
    write_derived_meta(target, meta, backend="torch", variant=variant, quantize="torch-dynamic")
    return target
