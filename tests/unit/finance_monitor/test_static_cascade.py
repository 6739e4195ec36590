"""The static tier's cascade inside the scorer: English rows only, verdict shape unchanged,
texts counted by tier, /healthz block."""

from __future__ import annotations

from typing import Any

import numpy as np

from finance_monitor import metrics
from finance_monitor.scoring import ScoringModel, score_texts, tier_status
from keel.inference import CascadePredictor

TOPICS = ["Earnings", "Stock Movement"]
SENTIMENTS = ["negative", "neutral", "positive"]


class TablePredictor:
    """Verdicts by whether the text contains ``sure`` (confident) or not; records calls."""

    def __init__(self, topic: int, confident_on: str | None) -> None:
        self.topic = topic
        self.confident_on = confident_on
        self.calls: list[list[str]] = []

    @property
    def heads(self) -> list[str]:
        return ["topic", "sentiment"]

    def head_labels(self, head: str | None = None) -> list[str]:
        return TOPICS if head == "topic" else SENTIMENTS

    def classify_heads(self, texts: Any) -> dict[str, np.ndarray]:
        texts = list(texts)
        self.calls.append(texts)
        top = np.asarray(
            [0.95 if self.confident_on is None or self.confident_on in t else 0.5 for t in texts],
            dtype=np.float32,
        ).reshape(-1, 1)
        topic = np.zeros((len(texts), 2), dtype=np.float32)
        topic[:, self.topic] = top[:, 0]
        topic[:, 1 - self.topic] = 1 - top[:, 0]
        sentiment = np.full((len(texts), 3), 0.0, dtype=np.float32)
        sentiment[:, 2] = top[:, 0]
        sentiment[:, 1] = 1 - top[:, 0]
        return {"topic": topic, "sentiment": sentiment}


def _model() -> tuple[ScoringModel, TablePredictor, TablePredictor, TablePredictor]:
    static = TablePredictor(0, confident_on="sure")
    transformer = TablePredictor(1, confident_on=None)
    zh = TablePredictor(1, confident_on=None)
    cascade = CascadePredictor(
        static,
        transformer,
        {"topic": 0.9, "sentiment": 0.9},
        on_route=metrics.record_tier_route,
    )
    tier = {"enabled": True, "thresholds": cascade.thresholds, "expected_static_share": 0.5}
    model = ScoringModel(cascade, TOPICS, SENTIMENTS, static_tier=tier)
    model.chinese = ScoringModel(zh, TOPICS, SENTIMENTS)
    return model, static, transformer, zh


def _count(tier: str) -> float:
    return metrics.TEXTS_BY_TIER.labels(tier)._value.get()


def test_cascade_scores_english_rows_and_leaves_chinese_rows_to_their_heads() -> None:
    model, static, transformer, zh = _model()
    before = _count("static"), _count("transformer")
    texts = ["sure: profit up", "maybe: shares move", "苹果公司季度利润增长", "sure again"]
    verdicts = score_texts(model, texts)
    # The static tier saw only the English rows; the transformer only the unsure one.
    assert static.calls == [["sure: profit up", "maybe: shares move", "sure again"]]
    assert transformer.calls == [["maybe: shares move"]]
    assert zh.calls == [["苹果公司季度利润增长"]]
    assert [v.topic for v in verdicts] == [
        "Earnings",
        "Stock Movement",
        "Stock Movement",
        "Earnings",
    ]
    assert [v.lang for v in verdicts] == ["en", "en", "zh", "en"]
    assert set(verdicts[0].sentiment_scores) == set(SENTIMENTS)
    assert (_count("static") - before[0], _count("transformer") - before[1]) == (2, 1)
    status = tier_status(model)
    assert status["state"] == "on"
    assert status["static_texts"] == 2 and status["transformer_texts"] == 1


def test_tier_status_without_or_with_an_off_tier() -> None:
    plain = ScoringModel(TablePredictor(0, None), TOPICS, SENTIMENTS)
    assert tier_status(plain) == {"state": "absent"}
    off = ScoringModel(
        TablePredictor(0, None),
        TOPICS,
        SENTIMENTS,
        static_tier={"enabled": False, "reason": "no threshold keeps the bound"},
    )
    status = tier_status(off)
    assert status["state"] == "off" and "bound" in status["reason"]
