"""A/B bucket hashing and MMR ordering."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.buckets import RANKING_CONFIGS, assign_bucket, bucket_index
from recommender.diversity import mmr_order


def test_bucket_is_stable_and_uses_every_bucket() -> None:
    names = ["control", "diverse"]
    first = [assign_bucket(f"user-{i}", names).name for i in range(400)]
    again = [assign_bucket(f"user-{i}", names).name for i in range(400)]
    assert first == again
    share = first.count("control") / len(first)
    assert 0.4 < share < 0.6


def test_bucket_index_known_value_and_bad_count() -> None:
    # sha256 based, so the value is the same in every process and on every machine
    assert bucket_index("alice", 2) == bucket_index("alice", 2)
    assert bucket_index("alice", 1) == 0
    with pytest.raises(ValueError, match="n_buckets"):
        bucket_index("alice", 0)


def test_ranking_configs_are_valid() -> None:
    assert RANKING_CONFIGS["control"].mmr_lambda == 1.0
    assert RANKING_CONFIGS["diverse"].mmr_lambda < 1.0


def _vectors() -> np.ndarray:
    # items 0 and 1 are near-duplicates; item 2 points elsewhere
    v = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_mmr_lambda_one_is_relevance_order() -> None:
    rel = np.array([0.9, 0.8, 0.5])
    assert mmr_order(rel, _vectors(), 1.0).tolist() == [0, 1, 2]


def test_mmr_low_lambda_promotes_the_diverse_item() -> None:
    rel = np.array([0.9, 0.8, 0.5])
    assert mmr_order(rel, _vectors(), 0.3).tolist() == [0, 2, 1]


def test_mmr_k_limits_greedy_part_and_keeps_all_items() -> None:
    rel = np.array([0.9, 0.8, 0.5, 0.1])
    vec = np.vstack([_vectors(), [[0.0, -1.0]]])
    order = mmr_order(rel, vec, 0.5, k=1)
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert order[0] == 0
    assert mmr_order(np.zeros(0), np.zeros((0, 2)), 0.5).tolist() == []
