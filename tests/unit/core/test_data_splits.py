"""Label maps, stratified splits, k-shot sampling and fingerprints."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from keel.data import LabelledTexts, LabelMap, fingerprint, sample_k_shot, stratified_split
from keel.errors import ConfigError, DataError


def make_data(per_label: dict[str, int]) -> LabelledTexts:
    texts, labels = [], []
    for label, n in per_label.items():
        for i in range(n):
            texts.append(f"{label} example {i}")
            labels.append(label)
    return LabelledTexts(texts, labels)


def test_label_map_round_trip_and_unknown_label() -> None:
    label_map = LabelMap.from_labels(["b", "a", "b", "c"])
    assert label_map.labels == ["a", "b", "c"]
    ids = label_map.encode(["c", "a"])
    assert ids.tolist() == [2, 0]
    assert label_map.decode(ids) == ["c", "a"]
    with pytest.raises(DataError, match="unknown label 'z'"):
        label_map.encode(["z"])


def test_label_map_multi_hot() -> None:
    label_map = LabelMap.from_labels([["a", "b"], ["c"]])
    hot = label_map.encode_multi_hot([["a", "c"], []])
    assert hot.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_stratified_split_keeps_label_shares_and_is_repeatable() -> None:
    data = make_data({"a": 50, "b": 30, "c": 20})
    train, val = stratified_split(data, test_size=0.2, seed=13)
    assert len(train) + len(val) == 100
    assert Counter(val.labels) == {"a": 10, "b": 6, "c": 4}
    assert not set(train.texts) & set(val.texts)
    _again_train, again_val = stratified_split(data, test_size=0.2, seed=13)
    assert again_val.texts == val.texts
    other_val = stratified_split(data, test_size=0.2, seed=14)[1]
    assert other_val.texts != val.texts


def test_stratified_split_rejects_bad_size() -> None:
    with pytest.raises(ConfigError, match="test_size"):
        stratified_split(make_data({"a": 4}), test_size=1.5)


def test_sample_k_shot_takes_k_per_label() -> None:
    data = make_data({"a": 20, "b": 3, "c": 12})
    sample = sample_k_shot(data, k=5, seed=1)
    assert Counter(sample.labels) == {"a": 5, "b": 3, "c": 5}
    assert sample_k_shot(data, k=5, seed=1).texts == sample.texts
    with pytest.raises(ConfigError, match="k=0"):
        sample_k_shot(data, k=0)


def test_sample_k_shot_multi_label_covers_every_label() -> None:
    data = LabelledTexts(
        [f"t{i}" for i in range(30)], [["a", "b"] if i % 3 else ["c"] for i in range(30)]
    )
    sample = sample_k_shot(data, k=2, seed=0)
    counts = Counter(label for row in sample.label_lists() for label in row)
    assert all(counts[label] >= 2 for label in "abc")
    assert len(sample) < len(data)


def test_fingerprint_changes_with_content() -> None:
    data = make_data({"a": 3, "b": 3})
    assert fingerprint(data) == fingerprint(make_data({"a": 3, "b": 3}))
    assert fingerprint(data).startswith("sha256:")
    changed = LabelledTexts(data.texts, [*data.labels[:-1], "a"])
    assert fingerprint(changed) != fingerprint(data)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        LabelledTexts(["a", "b"], ["x"])
    assert np.array_equal(LabelMap(["x"]).encode(["x"]), [0])
