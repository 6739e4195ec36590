"""Calibration: expected calibration error and temperature scaling."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from keel.errors import KeelError


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def expected_calibration_error(
    probs: np.ndarray, y: Sequence[int] | np.ndarray, n_bins: int = 15
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins.

    Args:
        probs: ``[n, n_labels]`` class probabilities.
        y: gold class ids ``[n]``.
        n_bins: number of confidence bins over [0, 1].

    Returns:
        The weighted mean |accuracy - confidence| over bins (0 = perfectly calibrated).
    """
    p = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(y)
    if p.ndim != 2 or len(p) != len(gold) or len(p) == 0:
        raise KeelError(
            f"probs must be [n, n_labels] with n = len(y) > 0; got {p.shape} and {len(gold)}"
        )
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``softmax(logits / temperature)`` against ``y``."""
    probs = _softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(logits: np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """Temperature ``T`` minimising validation NLL of ``softmax(logits / T)``.

    Fit it on the validation split and store it in the artifact (``meta.temperature``);
    it changes confidences, never the predicted class.

    Returns:
        The temperature (> 0; > 1 softens over-confident models).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    gold = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(gold) or len(z) == 0:
        raise KeelError(f"logits must be [n, n_labels] with n = len(y) > 0; got {z.shape}")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(z, gold, float(np.exp(log_t))),
        bounds=(-4.0, 4.0),
        method="bounded",
    )
    return float(np.exp(result.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities of ``logits / temperature``."""
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature)
