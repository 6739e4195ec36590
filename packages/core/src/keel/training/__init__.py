"""Classifier training (head, full, fewshot), multi-head models and pair training."""

from keel.training._runtime import set_progress_listener
from keel.training.classifier import TextClassifier
from keel.training.config import PRODUCTION_TRAIN_MINUTES, ClassifierConfig, PairConfig, Strategy
from keel.training.pairs import cross_encoder_scores, train_bi_encoder, train_cross_encoder
from keel.training.trainer import evaluate_heads, train_classifier, train_multi_head

__all__ = [
    "PRODUCTION_TRAIN_MINUTES",
    "ClassifierConfig",
    "PairConfig",
    "Strategy",
    "TextClassifier",
    "cross_encoder_scores",
    "evaluate_heads",
    "set_progress_listener",
    "train_bi_encoder",
    "train_classifier",
    "train_cross_encoder",
    "train_multi_head",
]
