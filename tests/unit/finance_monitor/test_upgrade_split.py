"""The finance monitor's live upgrade: the held-out rows it validates on, the score it
compares, and the ``/healthz`` block (no training: the build itself is slow)."""

from __future__ import annotations

from typing import Any

import numpy as np

from finance_monitor.model_prep import TrainingSets, load_training_sets
from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD, ScoringModel
from finance_monitor.upgrade import HOLDOUT_SHARE, held_out_scores, split_sets


def test_the_held_out_rows_are_a_seeded_stratified_share_kept_out_of_training() -> None:
    sets = load_training_sets(None)
    train, held = split_sets(sets)
    assert isinstance(train, TrainingSets)
    again, held_again = split_sets(sets)
    assert held == held_again and train.topic_texts == again.topic_texts  # seeded
    for head, texts, labels, kept in (
        (TOPIC_HEAD, sets.topic_texts, sets.topic_labels, train.topic_texts),
        (SENTIMENT_HEAD, sets.sentiment_texts, sets.sentiment_labels, train.sentiment_texts),
    ):
        held_texts, held_labels = held[head]
        assert len(held_texts) + len(kept) == len(texts)
        assert abs(len(held_texts) - HOLDOUT_SHARE * len(texts)) <= len(set(labels))
        # Disjoint, but for texts that occur more than once in the data.
        assert len(set(held_texts) & set(kept)) <= len(texts) - len(set(texts))
        assert set(held_labels) == set(labels)  # every label is validated


class _FixedHeads:
    """Always the first topic and the sentiment given."""

    def __init__(self, topics: int, sentiments: list[str], sentiment: str) -> None:
        self.topics, self.sentiments, self.sentiment = topics, sentiments, sentiment

    def classify_heads(self, texts: list[str]) -> dict[str, Any]:
        sentiment = np.zeros((len(texts), len(self.sentiments)))
        sentiment[:, self.sentiments.index(self.sentiment)] = 1.0
        topic = np.zeros((len(texts), self.topics))
        topic[:, 0] = 1.0
        return {TOPIC_HEAD: topic, SENTIMENT_HEAD: sentiment}


def test_the_score_is_the_mean_head_accuracy() -> None:
    sentiments = ["negative", "neutral", "positive"]
    model = ScoringModel(_FixedHeads(2, sentiments, "neutral"), ["Earnings", "M&A"], sentiments)
    held = {
        TOPIC_HEAD: (["a", "b", "c", "d"], ["Earnings", "Earnings", "Earnings", "M&A"]),
        SENTIMENT_HEAD: (["e", "f"], ["neutral", "positive"]),
    }
    assert held_out_scores(model, held) == {TOPIC_HEAD: 0.75, SENTIMENT_HEAD: 0.5, "score": 0.625}
