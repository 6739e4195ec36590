"""Evaluate a saved classifier on a labelled file: metrics, calibration, confusion PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keel.data import LabelledTexts
from keel.errors import DataError
from keel.evaluation.calibration import expected_calibration_error
from keel.evaluation.classification import classification_metrics, multilabel_metrics
from keel.evaluation.plots import confusion_matrix_png


def evaluate_classifier(
    model: Any,
    data: LabelledTexts,
    *,
    head: str | None = None,
    confusion_png: str | Path | None = None,
    per_class: bool = True,
) -> dict[str, Any]:
    """Score a ``TextClassifier`` on labelled data.

    Args:
        model: a ``keel.training.TextClassifier``.
        data: gold texts and labels.
        head: which head (default: the first).
        confusion_png: where to draw the confusion matrix (single-label only).
        per_class: include the per-class report.

    Returns:
        accuracy, macro_f1 (or micro/macro-F1 for multi-label), ECE, n, per_class.

    Raises:
        DataError: gold labels the model does not know.
    """
    name = head or model.head_names[0]
    labels = model.linear_heads[name].labels
    unknown = sorted(set(data.label_set()) - set(labels))
    if unknown:
        raise DataError(f"labels unknown to the model: {unknown[:5]}", data.source)
    probs = model.predict_proba(data.texts, head=name)
    if model.linear_heads[name].multi_label:
        predicted = [[labels[j] for j in np.flatnonzero(row >= 0.5)] for row in probs]
        result = multilabel_metrics(data.label_lists(), predicted, labels)
    else:
        predicted_single = [labels[j] for j in probs.argmax(axis=1)]
        result = classification_metrics(data.labels, predicted_single, labels)  # type: ignore[arg-type]
        gold_ids = np.asarray([labels.index(label) for label in data.labels])
        result["ece"] = expected_calibration_error(probs, gold_ids)
        if confusion_png is not None:
            result["confusion_png"] = str(
                confusion_matrix_png(data.labels, predicted_single, labels, confusion_png)  # type: ignore[arg-type]
            )
    if not per_class:
        result.pop("per_class", None)
    return result
