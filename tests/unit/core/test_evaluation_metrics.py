"""Classification, calibration, out-of-scope and ranking metrics on hand-checked inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keel.errors import KeelError
from keel.evaluation import (
    apply_temperature,
    auc,
    classification_metrics,
    confusion_matrix,
    confusion_matrix_png,
    expected_calibration_error,
    fit_temperature,
    hit_rate_at_k,
    mrr_at_k,
    multilabel_metrics,
    ndcg_at_k,
    negative_log_likelihood,
    oos_metrics,
    recall_at_k,
)


def test_classification_metrics_by_hand() -> None:
    m = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3)
    with pytest.raises(KeelError, match="2 items"):
        classification_metrics(["a", "b"], ["a"])


def test_multilabel_metrics_by_hand() -> None:
    m = multilabel_metrics([["a", "b"], ["b"]], [["a"], ["b", "c"]], ["a", "b", "c"])
    # tp=2 (a in row 0, b in row 1), fp=1 (c), fn=1 (b in row 0)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["subset_accuracy"] == 0.0


def test_ece_zero_for_calibrated_and_large_for_overconfident() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, [0, 1]) == pytest.approx(0.0)
    overconfident = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(overconfident, [0] * 5 + [1] * 5) == pytest.approx(0.49)


def test_temperature_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=400)
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), y] += 1.0
    scaled = logits * 8.0  # same argmax, far too confident
    temperature = fit_temperature(scaled, y)
    assert 4.0 < temperature < 16.0
    assert negative_log_likelihood(scaled, y, temperature) < negative_log_likelihood(scaled, y)
    before = expected_calibration_error(apply_temperature(scaled, 1.0), y)
    after = expected_calibration_error(apply_temperature(scaled, temperature), y)
    assert after < before
    assert np.array_equal(apply_temperature(scaled, temperature).argmax(1), scaled.argmax(1))


def test_oos_metrics_threshold_rejects_target_share() -> None:
    in_scores = np.linspace(0.5, 1.0, 100)
    oos_scores = np.linspace(0.0, 0.6, 50)
    m = oos_metrics(in_scores, oos_scores, target_oos_rejection=0.9, in_correct=[True] * 100)
    assert m["oos_rejection"] >= 0.9
    assert 0.0 < m["in_scope_kept"] <= 1.0
    assert m["auroc"] > 0.95
    assert m["in_scope_accuracy"] == 1.0
    assert m["in_scope_accuracy_at_threshold"] == pytest.approx(m["in_scope_kept"])
    perfect = oos_metrics([0.9, 0.8], [0.1, 0.2], target_oos_rejection=1.0)
    assert (
        perfect["auroc"] == 1.0
        and perfect["in_scope_kept"] == 1.0
        and perfect["oos_rejection"] == 1.0
    )


def test_ranking_metrics_by_hand() -> None:
    ranked = [["x", "a", "y"], ["b", "z", "c"], ["q", "r", "s"]]
    relevant = [{"a"}, {"b", "c"}, {"t"}]
    assert mrr_at_k(ranked, relevant, k=3) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert mrr_at_k(ranked, relevant, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, k=3) == pytest.approx((1 + 1 + 0) / 3)
    assert recall_at_k(ranked, relevant, k=1) == pytest.approx((0 + 0.5 + 0) / 3)
    assert hit_rate_at_k(ranked, relevant, k=2) == pytest.approx(2 / 3)
    expected_q1 = (1 / np.log2(3)) / 1.0
    expected_q2 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert ndcg_at_k(ranked, relevant, k=3) == pytest.approx((expected_q1 + expected_q2 + 0) / 3)
    assert ndcg_at_k([["a", "b"]], [{"a": 3.0, "b": 1.0}], k=2) == pytest.approx(1.0)
    with pytest.raises(KeelError, match="2 rankings but 1"):
        mrr_at_k(ranked[:2], relevant[:1])


def test_auc_by_hand_and_errors() -> None:
    assert auc([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == 1.0
    assert auc([1, 0], [0.2, 0.8]) == 0.0
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(KeelError, match="both positive and negative"):
        auc([1, 1], [0.1, 0.2])


def test_confusion_matrix_counts_and_png(tmp_path: Path) -> None:
    matrix = confusion_matrix(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert matrix.tolist() == [[1, 1], [0, 1]]
    png = confusion_matrix_png(["a", "a", "b"], ["a", "b", "b"], ["a", "b"], tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
