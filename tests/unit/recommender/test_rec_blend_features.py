"""Feature computation and the additive blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.blend import BlendModel
from recommender.cooccurrence import ItemSimilarity
from recommender.errors import ArtifactMismatchError
from recommender.features import (
    BASE_FEATURES,
    CandidateBatch,
    HistoryBatch,
    compute_features,
    recency_weights,
)


def unit(rows: list[list[float]]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_history() -> HistoryBatch:
    return HistoryBatch(
        ids=["h-cook", "h-code"],
        vectors=unit([[1, 0, 0], [0, 1, 0]]),
        weights=recency_weights(2, 10.0),
        rows=np.array([0, 1]),
        categories=[frozenset({"cooking"}), frozenset({"programming"})],
        titles=["Soup", "Python"],
    )


def make_candidates() -> CandidateBatch:
    n = 3
    return CandidateBatch(
        ids=["c-code", "c-cook", "c-other"],
        vectors=unit([[0, 1, 0.1], [1, 0, 0.1], [0, 0, 1]]),
        rows=np.array([2, 3, -1]),
        categories=[frozenset({"programming"}), frozenset({"cooking"}), frozenset({"music"})],
        popularity=np.array([0.5, 0.2, 0.0]),
        trending=np.zeros(n),
        freshness=np.zeros(n),
        titles=["Code 2", "Cook 2", "Other"],
    )


def test_recency_weights_newest_is_one_and_halves() -> None:
    w = recency_weights(3, half_life=1.0)
    assert w.tolist() == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="half_life"):
        recency_weights(3, 0)


def test_features_semantic_and_category_match() -> None:
    fm = compute_features(make_history(), make_candidates(), None)
    assert fm.names == list(BASE_FEATURES)
    sem = fm.column("semantic")
    assert sem[0] > sem[2] and sem[1] > sem[2]
    # the newer history item (code) weighs more than the older one (cooking)
    assert sem[0] > sem[1]
    assert fm.column("category_match").tolist()[2] == 0.0
    assert fm.column("category_match")[0] > 0
    assert fm.history_semantic.shape == (2, 3)


def test_features_empty_history_gives_zeros() -> None:
    empty = HistoryBatch([], np.zeros((0, 3), np.float32), np.zeros(0), np.zeros(0, int), [], [])
    fm = compute_features(empty, make_candidates(), None)
    assert np.all(fm.column("semantic") == 0)
    assert fm.column("popularity").tolist() == [0.5, 0.2, 0.0]


def test_cooccurrence_feature_uses_similarity() -> None:
    # users 0 and 1 both liked items 1 and 2 (the code items): they co-occur
    sim = ItemSimilarity.from_interactions([0, 0, 1, 1], [1, 2, 1, 2], n_items=4, shrinkage=0.0)
    fm = compute_features(make_history(), make_candidates(), sim)
    co = fm.column("cooccurrence")
    assert co[0] > 0 and co[1] == 0 and co[2] == 0


def test_blend_learns_a_rising_shape_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((600, 2))
    y = (x[:, 0] + 0.1 * rng.standard_normal(600) > 0.5).astype(int)
    blend = BlendModel.fit(x, y, ["signal", "noise"], interactions=())
    contrib = blend.contributions(np.array([[0.1, 0.5], [0.9, 0.5]]), ["signal", "noise"])
    assert contrib[1, 0] > contrib[0, 0]
    assert blend.importance[0] > blend.importance[1]
    scores = blend.score(x[:5], ["signal", "noise"])
    np.testing.assert_allclose(
        scores, blend.contributions(x[:5], ["signal", "noise"]).sum(1) + blend.bias
    )
    blend.save(tmp_path / "blend.json")
    again = BlendModel.load(tmp_path / "blend.json")
    np.testing.assert_allclose(again.score(x[:5], ["signal", "noise"]), scores)
    assert [i["name"] for i in again.describe()["inputs"]] == ["signal", "noise"]


def test_blend_needs_both_classes_and_its_features() -> None:
    with pytest.raises(ValueError, match="labels"):
        BlendModel.fit(np.zeros((4, 1)), np.ones(4), ["a"])
    blend = BlendModel.prior(["semantic", "popularity"])
    with pytest.raises(ArtifactMismatchError, match="popularity"):
        blend.score(np.zeros((1, 1)), ["semantic"])
