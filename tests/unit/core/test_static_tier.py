"""The static-embedding tier's pure logic: threshold choice, cascade routing, PCA / SIF."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from keel.compression.static import StaticDistillConfig, pca_project, zipf_sif_weights
from keel.compression.static_tier import SliceScores, choose_thresholds, holdout_split
from keel.errors import ConfigError
from keel.inference import CascadePredictor, confident_rows

HEADS = ["sentiment", "topic"]


def _probs(top: list[float], labels: list[int], n_labels: int = 3) -> np.ndarray:
    """Rows whose top probability is ``top[i]`` on label ``labels[i]``."""
    out = np.zeros((len(top), n_labels), dtype=np.float32)
    for i, (p, label) in enumerate(zip(top, labels, strict=True)):
        out[i] = (1.0 - p) / (n_labels - 1)
        out[i, label] = p
    return out


class FakeTier:
    """A predictor whose probabilities come from a table keyed by text."""

    def __init__(self, table: dict[str, dict[str, np.ndarray]], n_labels: int = 3) -> None:
        self.table = table
        self.calls: list[list[str]] = []
        self.n_labels = n_labels

    @property
    def heads(self) -> list[str]:
        return HEADS

    def head_labels(self, head: str | None = None) -> list[str]:
        return [f"l{i}" for i in range(self.n_labels)]

    def classify_heads(self, texts: Any) -> dict[str, np.ndarray]:
        texts = list(texts)
        self.calls.append(texts)
        return {
            h: np.asarray([self.table[t][h] for t in texts], dtype=np.float32).reshape(
                len(texts), self.n_labels
            )
            for h in HEADS
        }


def _tiers() -> tuple[FakeTier, FakeTier]:
    sure = {h: np.asarray([0.9, 0.05, 0.05]) for h in HEADS}
    unsure_topic = {
        "sentiment": np.asarray([0.9, 0.05, 0.05]),
        "topic": np.asarray([0.4, 0.35, 0.25]),
    }
    static = FakeTier({"a": sure, "b": unsure_topic, "c": sure})
    fallback_row = {h: np.asarray([0.0, 0.0, 1.0]) for h in HEADS}
    fallback = FakeTier({t: fallback_row for t in "abc"})
    return static, fallback


def test_cascade_sends_only_unsure_rows_to_the_fallback_in_one_batch() -> None:
    static, fallback = _tiers()
    routed: list[tuple[int, int]] = []
    cascade = CascadePredictor(
        static,
        fallback,
        {"sentiment": 0.8, "topic": 0.8},
        on_route=lambda s, f: routed.append((s, f)),
    )
    out = cascade.classify_heads(["a", "b", "c"])
    assert fallback.calls == [["b"]]
    assert out["topic"].argmax(axis=1).tolist() == [0, 2, 0]
    assert out["sentiment"].argmax(axis=1).tolist() == [0, 2, 0]
    assert routed == [(2, 1)]
    assert cascade.static_rows == 2 and cascade.fallback_rows == 1
    assert cascade.static_share == pytest.approx(2 / 3)


def test_cascade_all_confident_never_calls_the_fallback() -> None:
    static, fallback = _tiers()
    cascade = CascadePredictor(static, fallback, {"sentiment": 0.5, "topic": 0.3})
    out = cascade.classify_heads(["a", "b"])
    assert fallback.calls == []
    assert out["topic"].shape == (2, 3)


def test_cascade_none_confident_sends_every_row() -> None:
    static, fallback = _tiers()
    cascade = CascadePredictor(static, fallback, {"sentiment": 1.0, "topic": 1.0})
    out = cascade.classify_heads(["a", "b", "c"])
    assert fallback.calls == [["a", "b", "c"]]
    assert out["sentiment"].argmax(axis=1).tolist() == [2, 2, 2]


def test_cascade_empty_batch() -> None:
    static, fallback = _tiers()
    routed: list[tuple[int, int]] = []
    cascade = CascadePredictor(
        static,
        fallback,
        {"sentiment": 0.5, "topic": 0.5},
        on_route=lambda s, f: routed.append((s, f)),
    )
    out = cascade.classify_heads([])
    assert fallback.calls == [] and routed == []
    assert set(out) == set(HEADS)


def test_cascade_rejects_bad_thresholds_and_strings() -> None:
    static, fallback = _tiers()
    with pytest.raises(ConfigError):
        CascadePredictor(static, fallback, {"sentiment": 0.5})
    with pytest.raises(ConfigError):
        CascadePredictor(static, fallback, {"sentiment": 0.5, "topic": 1.5})
    cascade = CascadePredictor(static, fallback, {"sentiment": 0.5, "topic": 0.5})
    with pytest.raises(ConfigError):
        cascade.classify_heads("a")  # type: ignore[arg-type]


def test_confident_rows_needs_every_head() -> None:
    probs = {
        "topic": _probs([0.9, 0.5, 0.95], [0, 1, 2]),
        "sentiment": _probs([0.9, 0.9, 0.4], [0, 0, 0]),
    }
    assert confident_rows(probs, {"topic": 0.8, "sentiment": 0.8}).tolist() == [True, False, False]


def _slice(
    confidence: list[float], static_right: list[bool], transformer_right: list[bool]
) -> SliceScores:
    n = len(confidence)
    gold = np.zeros(n, dtype=int)
    static_pred = [0 if ok else 1 for ok in static_right]
    probs = _probs(confidence, static_pred)
    return SliceScores(
        static={"topic": probs, "sentiment": probs},
        transformer=np.asarray([0 if ok else 2 for ok in transformer_right]),
        gold=gold,
    )


def test_thresholds_are_the_lowest_that_keep_the_bound() -> None:
    # Topic: static is right on its confident rows (>= 0.8) and wrong below; sentiment:
    # always sure and right; the transformer is right everywhere. The cascade may keep
    # exactly the rows whose topic confidence is 0.8 or more.
    conf = [0.95, 0.9, 0.85, 0.8, 0.6, 0.5, 0.45, 0.4]
    right = [c >= 0.8 for c in conf]
    topic = _slice(conf, right, [True] * len(conf))
    sure = _probs([0.99] * len(conf), [0] * len(conf))
    sl = SliceScores(
        {"topic": topic.static["topic"], "sentiment": sure}, topic.transformer, topic.gold
    )
    choice = choose_thresholds({"topic": sl, "sentiment": sl}, max_drop_points=0.5)
    assert choice.enabled
    assert choice.static_share == pytest.approx(0.5)
    assert 0.6 < choice.thresholds["topic"] <= 0.8
    assert choice.thresholds["sentiment"] <= 0.99
    for head in ("topic", "sentiment"):
        acc = choice.accuracy[head]
        assert acc["cascade"] >= acc["transformer"] - 0.005


def test_a_looser_bound_gives_a_larger_share() -> None:
    conf = [0.95, 0.9, 0.85, 0.8, 0.6, 0.5, 0.45, 0.4] * 5
    right = [c >= 0.8 or i % 8 == 4 for i, c in enumerate(conf)]
    sl = _slice(conf, right, [True] * len(conf))
    strict = choose_thresholds({"topic": sl, "sentiment": sl}, max_drop_points=0.5)
    loose = choose_thresholds({"topic": sl, "sentiment": sl}, max_drop_points=30.0)
    assert loose.static_share > strict.static_share


def test_no_threshold_keeps_the_bound_turns_the_cascade_off() -> None:
    conf = [0.99, 0.98, 0.97]
    sl = _slice(conf, [False, False, False], [True, True, True])
    choice = choose_thresholds({"topic": sl, "sentiment": sl}, max_drop_points=0.5)
    assert not choice.enabled
    assert choice.thresholds == {} and choice.static_share == 0.0
    assert "transformer answers every row" in choice.reason
    assert choice.as_dict()["enabled"] is False


def test_static_better_than_transformer_routes_everything() -> None:
    sl = _slice([0.7, 0.6, 0.5], [True, True, True], [False, True, True])
    choice = choose_thresholds({"topic": sl, "sentiment": sl})
    assert choice.enabled and choice.static_share == 1.0


def test_threshold_choice_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        choose_thresholds({})
    empty = SliceScores(
        static={"topic": np.zeros((0, 3))}, transformer=np.zeros(0), gold=np.zeros(0)
    )
    with pytest.raises(ConfigError):
        choose_thresholds({"topic": empty})


def test_holdout_split_is_disjoint_seeded_and_capped() -> None:
    fit, held = holdout_split(100, 0.2, cap=15)
    assert len(held) == 15 and len(fit) == 85
    assert not set(fit) & set(held)
    again = holdout_split(100, 0.2, cap=15)
    assert held.tolist() == again[1].tolist()
    with pytest.raises(ConfigError):
        holdout_split(1, 0.2, cap=10)


def test_pca_keeps_the_top_axes_and_sif_downweights_frequent_ids() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 2)) * [10.0, 1.0]
    x = np.concatenate([base, rng.normal(size=(200, 6)) * 0.01], axis=1)
    projected = pca_project(x, 2)
    assert projected.shape == (200, 2)
    assert projected[:, 0].var() > projected[:, 1].var() > 0.5
    weights = zipf_sif_weights(1000, 1e-4)
    assert weights[0] < weights[10] < weights[-1] <= 1.0
    assert np.all(zipf_sif_weights(5, None) == 1.0)


def test_distill_config_validates() -> None:
    with pytest.raises(ConfigError):
        StaticDistillConfig(dims=1)
    with pytest.raises(ConfigError):
        StaticDistillConfig(sif_coefficient=2.0)
    with pytest.raises(ConfigError):
        StaticDistillConfig(max_tokens=3)
