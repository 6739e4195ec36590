"""Classifier training (head, full, fewshot), multi-head models and pair training."""

from keel.training.classifier import TextClassifier
from keel.training.config import ClassifierConfig, PairConfig, Strategy
from keel.training.trainer import evaluate_heads, train_classifier, train_multi_head

__all__ = [
    "ClassifierConfig",
    "PairConfig",
    "Strategy",
    "TextClassifier",
    "evaluate_heads",
    "train_classifier",
    "train_multi_head",
]
