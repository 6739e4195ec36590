"""Out-of-scope detection: AUROC and the rejection threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.evaluation.ranking import auc


def oos_metrics(
    in_scores: Sequence[float] | np.ndarray,
    oos_scores: Sequence[float] | np.ndarray,
    target_oos_rejection: float = 0.9,
    in_correct: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, Any]:
    """How well a confidence score separates in-scope from out-of-scope inputs.

    Inputs whose score is below ``threshold`` are rejected as out-of-scope. The
    threshold is the lowest one that rejects at least ``target_oos_rejection`` of the
    out-of-scope inputs, so it keeps as many in-scope inputs as possible.

    Args:
        in_scores: confidence (e.g. max probability) of in-scope inputs.
        oos_scores: confidence of out-of-scope inputs.
        target_oos_rejection: share of out-of-scope inputs to reject (0..1).
        in_correct: whether each in-scope prediction is right (adds accuracy figures).

    Returns:
        ``auroc`` (in-scope vs out-of-scope), ``threshold``, ``oos_rejection`` and
        ``in_scope_kept`` at that threshold, and with ``in_correct``:
        ``in_scope_accuracy`` (no rejection) and ``in_scope_accuracy_at_threshold``
        (rejected in-scope inputs count as wrong).
    """
    ins = np.asarray(in_scores, dtype=np.float64)
    oos = np.asarray(oos_scores, dtype=np.float64)
    if ins.size == 0 or oos.size == 0:
        raise KeelError("need at least one in-scope and one out-of-scope score")
    if not 0.0 < target_oos_rejection <= 1.0:
        raise KeelError(f"target_oos_rejection={target_oos_rejection!r}: must be in (0, 1]")
    labels = np.concatenate([np.ones_like(ins), np.zeros_like(oos)])
    result: dict[str, Any] = {"auroc": auc(labels, np.concatenate([ins, oos]))}
    ordered = np.sort(oos)
    index = min(len(ordered) - 1, int(np.ceil(target_oos_rejection * len(ordered))) - 1)
    threshold = float(np.nextafter(ordered[index], np.inf))
    result["threshold"] = threshold
    result["oos_rejection"] = float(np.mean(oos < threshold))
    result["in_scope_kept"] = float(np.mean(ins >= threshold))
    if in_correct is not None:
        correct = np.asarray(in_correct, dtype=bool)
        result["in_scope_accuracy"] = float(correct.mean())
        result["in_scope_accuracy_at_threshold"] = float(np.mean(correct & (ins >= threshold)))
    return result
