"""Intent prediction on top of a ``keel`` predictor: ranked intents and the in-scope test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntentScore:
    label: str
    probability: float


@dataclass(frozen=True)
class IntentPrediction:
    """The best intents of one text, most probable first."""

    ranked: tuple[IntentScore, ...]

    @property
    def top(self) -> IntentScore:
        return self.ranked[0]

    @property
    def second(self) -> IntentScore:
        return self.ranked[1] if len(self.ranked) > 1 else IntentScore("", 0.0)


def rank_intents(
    probabilities: np.ndarray, labels: Sequence[str], keep: int = 3
) -> IntentPrediction:
    """Turn one row of probabilities into an :class:`IntentPrediction` (``keep`` best)."""
    order = np.argsort(-probabilities)[:keep]
    return IntentPrediction(tuple(IntentScore(labels[i], float(probabilities[i])) for i in order))


class IntentModel:
    """Predicts intents with a calibrated out-of-scope threshold.

    Args:
        classify: batch function ``texts -> probabilities [n, n_labels]`` (a
            ``keel`` predictor's ``classify`` or a ``MicroBatcher`` around it).
        labels: label of each probability column.
        threshold: top probability under which a text is out of scope (calibrated
            on validation data by ``prepare``).
    """

    def __init__(
        self,
        classify: Callable[[list[str]], np.ndarray],
        labels: Sequence[str],
        threshold: float,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold!r}: must be within [0, 1]")
        self._classify = classify
        self.labels = list(labels)
        self.threshold = threshold

    def predict_many(self, texts: list[str]) -> list[IntentPrediction]:
        """Ranked intents of each text."""
        probabilities = np.asarray(self._classify(texts))
        return [rank_intents(row, self.labels) for row in probabilities]

    def predict(self, text: str) -> IntentPrediction:
        return self.predict_many([text])[0]

    def in_scope(self, prediction: IntentPrediction) -> bool:
        return prediction.top.probability >= self.threshold
