"""Confusion-matrix PNG (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """Counts ``[n_labels, n_labels]``: row = gold label, column = predicted label."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for gold, pred in zip(y_true, y_pred, strict=True):
        if gold in index and pred in index:
            matrix[index[gold], index[pred]] += 1
    return matrix


def confusion_matrix_png(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    path: str | Path,
    *,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Draw the confusion matrix (rows normalised to recall when ``normalize``) to a PNG.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(y_true, y_pred, labels).astype(np.float64)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    size = min(24.0, max(5.0, 0.22 * len(labels) + 3))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = np.arange(len(labels))
    font = 8 if len(labels) <= 30 else 5
    ax.set_xticks(ticks, labels=list(labels), rotation=90, fontsize=font)
    ax.set_yticks(ticks, labels=list(labels), fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}" if normalize else str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
