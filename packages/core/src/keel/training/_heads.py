"""Fitting linear classifier heads (``keel.models.LinearHead``) on frozen embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from keel.data import LabelledTexts, LabelMap
from keel.models._heads import LinearHead

if TYPE_CHECKING:
    import torch


@dataclass
class HeadTargets:
    """Encoded training targets of one head."""

    label_map: LabelMap
    multi_label: bool
    targets: np.ndarray  # int64 ids [n] or float32 multi-hot [n, n_labels]
    class_weight: np.ndarray | None  # [n_labels] float32, mean 1


def encode_targets(
    data: LabelledTexts, use_class_weights: bool, label_map: LabelMap | None = None
) -> HeadTargets:
    """Label map (sorted labels unless given), encoded targets and optional class weights."""
    labels_map = label_map or LabelMap.from_labels(data.labels)
    if data.multi_label:
        targets = labels_map.encode_multi_hot(data.label_lists())
        counts = targets.sum(axis=0)
    else:
        targets = labels_map.encode(data.labels)  # type: ignore[arg-type]
        counts = np.bincount(targets, minlength=len(labels_map)).astype(np.float32)
    weights = None
    if use_class_weights:
        inverse = len(data) / (len(labels_map) * np.maximum(counts, 1.0))
        weights = (inverse / inverse.mean()).astype(np.float32)
    return HeadTargets(labels_map, data.multi_label, targets, weights)


def head_loss_fn(targets: HeadTargets) -> torch.nn.Module:
    """The torch loss of a head: weighted cross-entropy, or BCE for multi-label."""
    import torch

    weight = torch.as_tensor(targets.class_weight) if targets.class_weight is not None else None
    if targets.multi_label:
        return torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    return torch.nn.CrossEntropyLoss(weight=weight)


def fit_linear_head(
    embeddings: np.ndarray,
    targets: HeadTargets,
    *,
    name: str = "default",
    l2: float = 1e-4,
    max_iter: int = 300,
    seed: int = 13,
) -> tuple[LinearHead, list[float]]:
    """Fit a linear head on frozen embeddings (multinomial / one-vs-rest logistic regression).

    Full-batch L-BFGS on the mean loss plus ``l2 * ||W||^2 / 2``.

    Returns:
        The head, and the training loss before and after fitting.
    """
    import torch

    torch.manual_seed(seed)
    x = torch.as_tensor(embeddings, dtype=torch.float32)
    n_labels = len(targets.label_map)
    y = torch.as_tensor(targets.targets)
    layer = torch.nn.Linear(x.shape[1], n_labels)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    loss_fn = head_loss_fn(targets)
    optimizer = torch.optim.LBFGS(
        layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(layer(x), y) + 0.5 * l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        start_loss = float(loss_fn(layer(x), y))
    optimizer.step(objective)
    with torch.no_grad():
        end_loss = float(loss_fn(layer(x), y))
    head = LinearHead(
        name=name,
        labels=targets.label_map.labels,
        multi_label=targets.multi_label,
        weight=layer.weight.detach().numpy().astype(np.float32).copy(),
        bias=layer.bias.detach().numpy().astype(np.float32).copy(),
    )
    return head, [start_loss, end_loss]
