"""Evaluation: classification, calibration, out-of-scope and ranking metrics."""

from keel.evaluation.classification import classification_metrics, multilabel_metrics

__all__ = ["classification_metrics", "multilabel_metrics"]
