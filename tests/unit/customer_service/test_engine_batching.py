"""engine.batched_classify: cached texts skip the micro-batcher's thread, others use it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from customer_service import engine
from keel.inference import FakePredictor


class CachingPredictor(FakePredictor):
    """A fake predictor with a per-text cache, recording the thread of each call."""

    def __init__(self) -> None:
        super().__init__(dim=16, labels=["a", "b", "c"])
        self.seen: set[str] = set()
        self.threads: list[str] = []

    def is_cached(self, texts: Sequence[str]) -> bool:
        return all(text in self.seen for text in texts)

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        self.seen.update(texts)
        return super().classify(texts, head)


def test_cached_texts_are_classified_on_the_callers_thread() -> None:
    predictor = CachingPredictor()
    batcher = engine.make_batched_classifier(predictor, max_batch_size=8, max_wait_ms=1)
    classify = engine.batched_classify(predictor, batcher)
    try:
        first = classify(["where is my card", "reset my pin"])
        assert batcher.items_run == 2  # not cached yet: the batcher's thread encoded them
        assert predictor.threads == ["keel-microbatcher"] * len(predictor.threads)
        again = classify(["reset my pin", "where is my card"])
        assert batcher.items_run == 2  # all cached: no hand-off
        assert predictor.threads[-1] == threading.current_thread().name
        np.testing.assert_allclose(again, first[::-1], rtol=1e-6)
        classify(["where is my card", "a new text"])  # one miss: the batcher again
        assert batcher.items_run == 4
    finally:
        batcher.close()


def test_a_predictor_without_a_cache_always_uses_the_batcher() -> None:
    predictor = FakePredictor(dim=16, labels=["a", "b"])
    batcher = engine.make_batched_classifier(predictor, max_batch_size=8, max_wait_ms=1)
    classify = engine.batched_classify(predictor, batcher)
    try:
        expected = predictor.classify(["hello", "hello"])
        np.testing.assert_allclose(classify(["hello", "hello"]), expected, rtol=1e-6)
        assert batcher.items_run == 2
    finally:
        batcher.close()
