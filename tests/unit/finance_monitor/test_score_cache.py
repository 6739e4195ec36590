"""The scorer's exact-repeat cache: same verdicts as scoring every text, fewer encoder calls."""

from __future__ import annotations

import numpy as np
import pytest

from finance_monitor.scoring import ScoreCache, ScoringModel, cache_key, score_texts


class CountingPredictor:
    """Deterministic two-head predictor (verdict from the text's words) counting texts seen."""

    def __init__(self) -> None:
        self.texts_seen = 0
        self.calls = 0

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.texts_seen += len(texts)
        topic = np.zeros((len(texts), 2))
        sentiment = np.zeros((len(texts), 3))
        for i, text in enumerate(texts):
            words = text.split()
            topic[i, len(words) % 2] = 1.0
            sentiment[i, sum(len(w) for w in words) % 3] = 1.0
        return {"topic": topic, "sentiment": sentiment}


def _model() -> tuple[ScoringModel, CountingPredictor]:
    predictor = CountingPredictor()
    return ScoringModel(predictor, ["a", "b"], ["negative", "neutral", "positive"]), predictor


def test_cache_key_collapses_whitespace_only() -> None:
    assert cache_key("  Fed  holds\trates\n") == "Fed holds rates"
    assert cache_key("Fed holds rates") != cache_key("fed holds rates")


def test_cached_verdicts_equal_uncached_and_skip_repeats() -> None:
    texts = ["Fed holds rates", "Oil jumps 5%", "Fed  holds rates ", "Apple beats", "Oil jumps 5%"]
    plain_model, _ = _model()
    expected = score_texts(plain_model, [cache_key(t) for t in texts])
    model, predictor = _model()
    cache = ScoreCache(100)
    first = cache.score(model, texts)
    assert first == expected
    assert predictor.texts_seen == 3  # three distinct keys in the batch
    assert (cache.hits, cache.misses) == (2, 3)
    again = cache.score(model, texts[::-1])
    assert again == expected[::-1]
    assert predictor.texts_seen == 3  # every text answered from the cache
    assert cache.hit_rate == pytest.approx(7 / 10)


def test_lru_evicts_least_recent_and_zero_capacity_is_off() -> None:
    model, predictor = _model()
    cache = ScoreCache(2)
    cache.score(model, ["one", "two"])
    cache.score(model, ["one"])  # "one" is now the most recent
    cache.score(model, ["three"])  # evicts "two"
    assert len(cache) == 2
    seen = predictor.texts_seen
    cache.score(model, ["one", "three"])
    assert predictor.texts_seen == seen
    cache.score(model, ["two"])
    assert predictor.texts_seen == seen + 1

    off_model, off_predictor = _model()
    off = ScoreCache(0)
    off.score(off_model, ["x", "x"])
    assert off_predictor.texts_seen == 2 and len(off) == 0
    with pytest.raises(ValueError):
        ScoreCache(-1)


def test_empty_batch() -> None:
    model, predictor = _model()
    assert ScoreCache(10).score(model, []) == []
    assert predictor.calls == 0
