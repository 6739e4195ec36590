"""Hyperparameter search (Optuna) for classifiers."""

from keel.tuning.search import SearchSpace, TuneConfig, TuneResult, tune_classifier

__all__ = ["SearchSpace", "TuneConfig", "TuneResult", "tune_classifier"]
