"""Evaluation: classification, calibration, out-of-scope and ranking metrics."""

from keel.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from keel.evaluation.classification import classification_metrics, multilabel_metrics
from keel.evaluation.oos import oos_metrics
from keel.evaluation.plots import confusion_matrix, confusion_matrix_png
from keel.evaluation.ranking import auc, hit_rate_at_k, mrr_at_k, ndcg_at_k, recall_at_k
from keel.evaluation.report import evaluate_classifier

__all__ = [
    "apply_temperature",
    "auc",
    "classification_metrics",
    "confusion_matrix",
    "confusion_matrix_png",
    "evaluate_classifier",
    "expected_calibration_error",
    "fit_temperature",
    "hit_rate_at_k",
    "mrr_at_k",
    "multilabel_metrics",
    "ndcg_at_k",
    "negative_log_likelihood",
    "oos_metrics",
    "recall_at_k",
]
