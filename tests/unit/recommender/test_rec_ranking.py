"""The rerank pipeline: rules, explanations, cold-start items, MMR wiring."""

from __future__ import annotations

import numpy as np

from recommender.blend import BlendModel
from recommender.features import BASE_FEATURES
from recommender.ranking import RankOptions, rank_candidates
from tests.unit.recommender.test_rec_blend_features import make_candidates, make_history


def prior() -> BlendModel:
    return BlendModel.prior(list(BASE_FEATURES))


def test_matching_candidate_first_and_explained_by_right_history_item() -> None:
    result = rank_candidates(make_history(), make_candidates(), prior(), None, RankOptions())
    assert [i.id for i in result.items][-1] == "c-other"
    by_id = {i.id: i for i in result.items}
    assert by_id["c-code"].because[0].id == "h-code"
    assert by_id["c-cook"].because[0].id == "h-cook"
    assert set(by_id["c-code"].contributions) >= {"semantic", "popularity"}
    total = sum(by_id["c-code"].contributions.values())
    assert abs(total + prior().bias - by_id["c-code"].score) < 1e-9


def test_rules_drop_seen_excluded_and_filtered_items() -> None:
    cands = make_candidates()
    cands.ids[0] = "h-code"  # already in the history
    opts = RankOptions(exclude_categories=frozenset({"music"}))
    result = rank_candidates(make_history(), cands, prior(), None, opts)
    assert [i.id for i in result.items] == ["c-cook"]
    reasons = {f.id: f.reason for f in result.filtered}
    assert reasons["h-code"] == "already in history"
    assert reasons["c-other"].startswith("excluded category")
    only_cooking = RankOptions(include_categories=frozenset({"cooking"}))
    kept = rank_candidates(make_history(), make_candidates(), prior(), None, only_cooking)
    assert [i.id for i in kept.items] == ["c-cook"]


def test_top_k_and_duplicates() -> None:
    cands = make_candidates()
    cands.ids[2] = "c-code"
    result = rank_candidates(make_history(), cands, prior(), None, RankOptions(top_k=1))
    assert len(result.items) == 1
    assert any(f.reason == "duplicate candidate" for f in result.filtered)


def test_cold_items_get_neutral_collaborative_contributions() -> None:
    result = rank_candidates(make_history(), make_candidates(), prior(), None, RankOptions())
    other = next(i for i in result.items if i.id == "c-other")  # row -1: never logged
    assert other.contributions["popularity"] == 0.0
    assert other.contributions["cooccurrence"] == 0.0


def test_caller_numeric_feature_with_weight_changes_order() -> None:
    cands = make_candidates()
    cands.numeric = {"boost": np.array([0.0, 0.0, 100.0])}
    opts = RankOptions(numeric_weights={"boost": 1.0})
    result = rank_candidates(make_history(), cands, prior(), None, opts)
    assert result.items[0].id == "c-other"
    assert result.items[0].contributions["boost"] == 100.0


def test_history_unknown_to_logs_neutralises_cooccurrence_for_everyone() -> None:
    history = make_history()
    history.rows = np.array([-1, -1])  # history sent as free text
    result = rank_candidates(history, make_candidates(), prior(), None, RankOptions())
    assert all(i.contributions["cooccurrence"] == 0.0 for i in result.items)
    known = next(i for i in result.items if i.id == "c-code")
    assert known.contributions["popularity"] != 0.0  # item-level evidence still counts
