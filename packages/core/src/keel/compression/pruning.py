"""Structured pruning: drop whole transformer layers, or FFN neurons by importance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.compression._artifact_copy import (
    ENCODER_DIR,
    copy_encoder_without_weights,
    prepare_output,
    source_meta,
    write_derived_meta,
)
from keel.errors import ArtifactError, ConfigError
from keel.models._prefixes import read_prefixes


def parse_keep(keep: str | Sequence[int], n_layers: int) -> list[int]:
    """Which layers to keep.

    Args:
        keep: ``"bottom:N"`` (the first N layers), ``"every:K"`` (every K-th layer,
            counted from the top so the last layer stays), ``"spread:N"`` (N layers
            spread evenly, first and last included), or explicit layer indices.
        n_layers: layers of the source encoder.

    Raises:
        ConfigError: malformed spec or indices out of range.
    """
    if isinstance(keep, str):
        kind, _, value = keep.partition(":")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(
                "keep", keep, "use 'bottom:N', 'every:K', 'spread:N' or indices"
            ) from None
        if number < 1:
            raise ConfigError("keep", keep, "the number must be >= 1")
        if kind == "bottom":
            layers = list(range(min(number, n_layers)))
        elif kind == "every":
            layers = sorted(range(n_layers - 1, -1, -number))
        elif kind == "spread":
            layers = sorted({round(x) for x in np.linspace(0, n_layers - 1, min(number, n_layers))})
        else:
            raise ConfigError("keep", keep, "use 'bottom:N', 'every:K', 'spread:N' or indices")
    else:
        layers = sorted({int(i) for i in keep})
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ConfigError("keep", keep, f"layer indices must be within 0..{n_layers - 1}")
    return layers


def _encoder_layers(model: Any) -> Any:
    try:
        return model.encoder.layer
    except AttributeError:
        raise ArtifactError(
            "layer dropping supports BERT-style encoders (model.encoder.layer)"
        ) from None


def drop_encoder_layers(model: Any, layers: Sequence[int]) -> Any:
    """Keep only ``layers`` of a BERT-style encoder, in place; updates its config."""
    import torch

    module_list = _encoder_layers(model)
    model.encoder.layer = torch.nn.ModuleList([module_list[i] for i in layers])
    model.config.num_hidden_layers = len(layers)
    for new_index, layer in enumerate(model.encoder.layer):
        attention = getattr(layer.attention, "self", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index
    return model


def ffn_neuron_importance(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int
) -> list[np.ndarray]:
    """Importance of each FFN neuron per layer: mean |activation| x ‖output weight column‖.

    A neuron whose GELU output is small on real inputs, or whose outgoing weights are
    small, contributes little to the layer output (activation-aware magnitude, as in
    Wanda, Sun et al. 2023).
    """
    import torch

    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in _encoder_layers(model)]
    counts = [0]
    hooks = []
    for i, layer in enumerate(_encoder_layers(model)):

        def record(_module: Any, _inputs: Any, output: Any, index: int = i) -> None:
            sums[index] += output.detach().abs().sum(dim=(0, 1))

        hooks.append(layer.intermediate.register_forward_hook(record))
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                batch = tokenizer(
                    list(texts[start : start + 32]),
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                model(**batch)
                counts[0] += int(batch["attention_mask"].sum())
    finally:
        for hook in hooks:
            hook.remove()
    scores = []
    for layer, total in zip(_encoder_layers(model), sums, strict=True):
        column_norm = layer.output.dense.weight.detach().norm(dim=0)
        scores.append((total / max(1, counts[0]) * column_norm).numpy())
    return scores


def prune_ffn_neurons(model: Any, importance: list[np.ndarray], keep_fraction: float) -> Any:
    """Keep the most important ``keep_fraction`` of FFN neurons in every layer (same count
    per layer, so the result is a standard config with a smaller ``intermediate_size``)."""
    import torch

    layers = _encoder_layers(model)
    width = layers[0].intermediate.dense.out_features
    keep = max(1, round(width * keep_fraction))
    for layer, scores in zip(layers, importance, strict=True):
        index = torch.from_numpy(np.sort(np.argsort(-scores)[:keep]).astype(np.int64))
        dense_in = layer.intermediate.dense
        dense_out = layer.output.dense
        new_in = torch.nn.Linear(dense_in.in_features, keep)
        new_out = torch.nn.Linear(keep, dense_out.out_features)
        with torch.no_grad():
            new_in.weight.copy_(dense_in.weight[index])
            new_in.bias.copy_(dense_in.bias[index])
            new_out.weight.copy_(dense_out.weight[:, index])
            new_out.bias.copy_(dense_out.bias)
        layer.intermediate.dense = new_in
        layer.output.dense = new_out
    model.config.intermediate_size = keep
    return model


def _save_encoder(model: Any, source_encoder: Path, target_encoder: Path) -> None:
    copy_encoder_without_weights(source_encoder, target_encoder)
    model.save_pretrained(str(target_encoder))


def drop_layers(
    model_dir: str | Path,
    out_dir: str | Path,
    keep: str | Sequence[int] = "every:2",
    *,
    recovery_texts: Sequence[str] | None = None,
    recovery_steps: int = 200,
    show_progress: bool = True,
) -> Path:
    """Drop transformer layers; optionally recover by distilling from the source model.

    Args:
        model_dir: a torch classifier or encoder artifact.
        out_dir: the new (smaller) torch artifact.
        keep: which layers to keep (see ``parse_keep``).
        recovery_texts: training texts for a short recovery fine-tune that matches the
            source model's head logits (classifier) or embeddings (encoder). None: none.
        recovery_steps: optimizer steps of the recovery fine-tune.

    Returns:
        ``out_dir``.
    """
    from keel.compression.distillation import distill_into_student
    from keel.inference._torch_backend import load_tokenizer, load_torch_encoder

    source = Path(model_dir)
    target = Path(out_dir)
    meta = source_meta(source)
    model = load_torch_encoder(source / ENCODER_DIR)
    layers = parse_keep(keep, int(model.config.num_hidden_layers))
    drop_encoder_layers(model, layers)
    prepare_output(source, target)
    variant = f"layers-{len(layers)}"
    if recovery_texts:
        from keel.compression._student import DistillConfig

        distill_into_student(
            source,
            model,
            load_tokenizer(source / ENCODER_DIR),
            list(recovery_texts),
            target,
            DistillConfig(max_steps=recovery_steps, show_progress=show_progress),
            read_prefixes(source / ENCODER_DIR),
        )
    _save_encoder(model, source / ENCODER_DIR, target / ENCODER_DIR)
    write_derived_meta(
        target,
        meta,
        backend="torch",
        variant=variant,
        kept_layers=layers,
        recovery_steps=recovery_steps if recovery_texts else 0,
    )
    return target


def prune_ffn(
    model_dir: str | Path,
    out_dir: str | Path,
    keep_fraction: float = 0.5,
    *,
    importance_texts: Sequence[str],
    recovery_texts: Sequence[str] | None = None,
    recovery_steps: int = 200,
    show_progress: bool = True,
) -> Path:
    """Remove the least important FFN neurons of every layer, then optionally recover.

    Args:
        model_dir: a torch classifier or encoder artifact.
        out_dir: the new torch artifact (``intermediate_size`` shrinks).
        keep_fraction: share of FFN neurons kept per layer, in (0, 1].
        importance_texts: sample texts the importance is measured on.
        recovery_texts / recovery_steps: short distillation from the source model.
    """
    from keel.compression.distillation import distill_into_student
    from keel.inference._torch_backend import load_tokenizer, load_torch_encoder

    if not 0 < keep_fraction <= 1:
        raise ConfigError("keep_fraction", keep_fraction, "must be in (0, 1]")
    if not importance_texts:
        raise ConfigError("importance_texts", None, "needs sample texts to measure importance")
    source = Path(model_dir)
    target = Path(out_dir)
    meta = source_meta(source)
    tokenizer = load_tokenizer(source / ENCODER_DIR)
    model = load_torch_encoder(source / ENCODER_DIR)
    max_length = int(meta.get("max_length") or 128)
    prefixes = read_prefixes(source / ENCODER_DIR)
    scores = ffn_neuron_importance(model, tokenizer, prefixes.apply(importance_texts), max_length)
    prune_ffn_neurons(model, scores, keep_fraction)
    prepare_output(source, target)
    if recovery_texts:
        from keel.compression._student import DistillConfig

        distill_into_student(
            source,
            model,
            tokenizer,
            list(recovery_texts),
            target,
            DistillConfig(max_steps=recovery_steps, show_progress=show_progress),
            read_prefixes(source / ENCODER_DIR),
        )
    _save_encoder(model, source / ENCODER_DIR, target / ENCODER_DIR)
    config = json.loads((target / ENCODER_DIR / "config.json").read_text())
    write_derived_meta(
        target,
        meta,
        backend="torch",
        variant=f"ffn-{round(keep_fraction * 100)}",
        intermediate_size=config.get("intermediate_size"),
        recovery_steps=recovery_steps if recovery_texts else 0,
    )
    return target
