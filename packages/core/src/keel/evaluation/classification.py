"""Classification metrics: accuracy, macro-F1, per-class report (single- and multi-label)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keel.errors import KeelError


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1 and a per-class precision / recall / F1 / support report.

    Args:
        y_true: gold labels.
        y_pred: predicted labels, same length.
        labels: the label set to report (default: every label seen in either list).

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "n", "per_class": {label: {...}}}``.

    Raises:
        KeelError: the two lists differ in length or are empty.
    """
    if len(y_true) != len(y_pred):
        raise KeelError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if not y_true:
        raise KeelError("no examples to score")
    names = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    truth = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    per_class: dict[str, dict[str, float]] = {}
    f1s, supports = [], []
    for name in names:
        tp = int(np.sum((pred == name) & (truth == name)))
        fp = int(np.sum((pred == name) & (truth != name)))
        fn = int(np.sum((pred != name) & (truth == name)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support = tp + fn
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
        f1s.append(f1)
        supports.append(support)
    weights = np.asarray(supports, dtype=float)
    return {
        "accuracy": float(np.mean(truth == pred)),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "weighted_f1": float(np.average(f1s, weights=weights)) if weights.sum() else 0.0,
        "n": len(y_true),
        "per_class": per_class,
    }


def multilabel_metrics(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, Any]:
    """Micro-F1, macro-F1 and subset (exact-match) accuracy for label sets.

    Raises:
        KeelError: the two lists differ in length or are empty.
    """
    if len(y_true) != len(y_pred):
        raise KeelError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if not y_true:
        raise KeelError("no examples to score")
    index = {name: i for i, name in enumerate(labels)}
    truth = np.zeros((len(y_true), len(labels)), dtype=bool)
    pred = np.zeros_like(truth)
    for row, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        truth[row, [index[x] for x in t if x in index]] = True
        pred[row, [index[x] for x in p if x in index]] = True
    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    micro_denom = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "micro_f1": float(2 * tp.sum() / micro_denom) if micro_denom else 0.0,
        "macro_f1": float(f1.mean()),
        "subset_accuracy": float(np.mean(np.all(truth == pred, axis=1))),
        "n": len(y_true),
        "per_class": {
            name: {"f1": float(f1[i]), "support": int(truth[:, i].sum())}
            for i, name in enumerate(labels)
        },
    }
