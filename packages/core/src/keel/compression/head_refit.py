"""Re-fit the linear heads of a compressed model to the fp32 teacher's logits.

Quantization and layer dropping move the embeddings a little; the heads were fitted
to the old ones. Fitting only the heads (a few hundred full-batch steps on cached
features) to the teacher's logits recovers most of the lost agreement at almost no
cost, and needs no labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ConfigError
from keel.models._heads import head_file, read_head_tensors, write_head_tensors


def teacher_logits(teacher_dir: Path, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Logits of every head of ``teacher_dir`` for ``texts`` (computed once, reused)."""
    from keel.inference import load_predictor
    from keel.inference._encoder_base import EncoderPredictor

    teacher = load_predictor(teacher_dir)
    if not isinstance(teacher, EncoderPredictor) or not teacher.heads:
        raise ConfigError("teacher_dir", str(teacher_dir), "needs a classifier artifact")
    return {name: teacher.logits(list(texts), head=name) for name in teacher.heads}


def fit_head_to_logits(
    features: np.ndarray,
    target_logits: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    multi_label: bool = False,
    temperature: float = 2.0,
    steps: int = 300,
    learning_rate: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Adam on the full batch: match ``softmax(target / T)`` (sigmoid for multi-label).

    Starts from ``weight``/``bias`` and returns the fitted pair (float32).
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    target = torch.from_numpy(np.asarray(target_logits, dtype=np.float32))
    w = torch.nn.Parameter(torch.from_numpy(weight.copy()))
    b = torch.nn.Parameter(torch.from_numpy(bias.copy()))
    optimizer = torch.optim.Adam([w, b], lr=learning_rate)
    for _ in range(steps):
        logits = x @ w.T + b
        if multi_label:
            loss = F.binary_cross_entropy_with_logits(
                logits / temperature, torch.sigmoid(target / temperature)
            )
        else:
            loss = F.kl_div(
                F.log_softmax(logits / temperature, dim=1),
                F.softmax(target / temperature, dim=1),
                reduction="batchmean",
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)


def refit_heads(
    model_dir: str | Path,
    texts: Sequence[str],
    targets: dict[str, np.ndarray],
    *,
    steps: int = 300,
) -> Path:
    """Re-fit every head of the artifact ``model_dir`` (in place) to ``targets``.

    Args:
        model_dir: a compressed classifier artifact (any backend).
        texts: training texts (no labels needed).
        targets: teacher logits per head name, rows aligned with ``texts``
            (``teacher_logits``).
        steps: full-batch Adam steps per head.

    Returns:
        ``model_dir``; its ``keel.json`` records ``head_refit`` in the compression history.
    """
    from keel.inference import load_predictor
    from keel.inference._encoder_base import EncoderPredictor
    from keel.models.artifact import read_meta, write_meta

    folder = Path(model_dir)
    predictor: Any = load_predictor(folder)
    if not isinstance(predictor, EncoderPredictor) or not predictor.heads:
        raise ConfigError("model_dir", str(folder), "needs a classifier artifact")
    features = predictor.features(list(texts))
    meta = read_meta(folder)
    for name in predictor.heads:
        if name not in targets:
            raise ConfigError("targets", sorted(targets), f"no teacher logits for head {name!r}")
        path = head_file(folder, name)
        weight, bias = read_head_tensors(path)
        multi_label = bool(meta.heads.get(name, {}).get("multi_label", meta.multi_label))
        new_weight, new_bias = fit_head_to_logits(
            features, targets[name], weight, bias, multi_label=multi_label, steps=steps
        )
        write_head_tensors(path, new_weight, new_bias)
    history = list(meta.config.get("compression", []))
    history.append({"head_refit": {"texts": len(texts), "steps": steps}})
    meta.config = {**meta.config, "compression": history}
    meta.variant = f"{meta.variant}+refit"
    write_meta(folder, meta)
    return folder


__all__ = ["fit_head_to_logits", "refit_heads", "teacher_logits"]
