"""keel.compression.static.train_static / train_table: a static table trained by regression
to an encoder's document embeddings and contrastively on pairs; load_predictor serves the
saved folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keel.compression.static import StaticTrainConfig, pca_axes, pca_project, train_table
from keel.data import LabelledTexts
from keel.errors import ConfigError


def _cosines(table: np.ndarray, doc_ids: list[list[int]], pairs: list[tuple[int, int]]) -> float:
    docs = np.stack([table[ids].mean(axis=0) for ids in doc_ids])
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    return float(np.mean([docs[a] @ docs[b] for a, b in pairs]))


def _toy() -> tuple[np.ndarray, list[list[int]], np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(60, 8)).astype(np.float32)
    doc_ids = [sorted(rng.choice(60, size=4, replace=False).tolist()) for _ in range(24)]
    targets = rng.normal(size=(24, 8)).astype(np.float32)
    pairs = [(i, i + 1) for i in range(0, 24, 2)]
    return table, doc_ids, targets, pairs


def test_regression_lowers_its_loss_and_keeps_unused_rows() -> None:
    table, doc_ids, targets, _ = _toy()
    config = StaticTrainConfig(regress_epochs=20, contrastive_epochs=0, regress_batch=8)
    trained, losses = train_table(table, doc_ids, targets, [], config)
    assert trained.shape == table.shape and trained.dtype == np.float32
    assert losses["regress_last"] < losses["regress_first"]
    assert "contrastive_first" not in losses
    unused = sorted(set(range(60)) - {t for ids in doc_ids for t in ids})
    # Only the learned global offset moves rows no document uses.
    offset = trained[unused] - table[unused]
    assert np.allclose(offset, offset[0], atol=1e-5)


def test_contrastive_training_pulls_pairs_together() -> None:
    table, doc_ids, targets, pairs = _toy()
    config = StaticTrainConfig(
        regress_epochs=0, contrastive_epochs=15, contrastive_batch=6, anchor_weight=0.1
    )
    trained, losses = train_table(table, doc_ids, targets, pairs, config)
    assert losses["contrastive_last"] < losses["contrastive_first"]
    assert _cosines(trained, doc_ids, pairs) > _cosines(table, doc_ids, pairs)


def test_train_table_rejects_bad_input() -> None:
    table, doc_ids, targets, pairs = _toy()
    config = StaticTrainConfig(regress_epochs=1, contrastive_epochs=0)
    with pytest.raises(ConfigError, match="targets"):
        train_table(table, doc_ids, targets[:3], pairs, config)
    with pytest.raises(ConfigError, match="pairs"):
        train_table(table, doc_ids, targets, [(0, 99)], config)
    with pytest.raises(ConfigError, match="regress_epochs"):
        StaticTrainConfig(regress_epochs=-1)
    with pytest.raises(ConfigError, match="learning_rate"):
        StaticTrainConfig(learning_rate=0.0)


def test_pca_axes_reproduce_pca_project() -> None:
    rows = np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32)
    mean, axes = pca_axes(rows, 3)
    assert np.allclose((rows - mean) @ axes, pca_project(rows, 3), atol=1e-4)


def test_train_static_saves_a_table_load_predictor_serves(
    tiny_classifier_dir: Path, tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    from keel.compression import train_static
    from keel.inference import load_predictor
    from keel.inference._static import StaticPredictor, load_static_predictor

    documents = list(tiny_intents.texts)
    pairs = [(i, i + 1) for i in range(0, len(documents), 2)]  # same intent (6 per intent)
    config = StaticTrainConfig(
        dims=16, regress_epochs=2, contrastive_epochs=1, contrastive_batch=4, max_tokens=3000
    )
    out = train_static(
        tiny_classifier_dir,
        documents,
        pairs,
        tmp_path / "static",
        config,
        cache_dir=tmp_path / "cache",
        log=lambda _: None,
    )
    meta = json.loads((out / "static_tier.json").read_text())
    assert meta["heads"] == {} and meta["cascade"]["enabled"] is False
    assert meta["pairs"] == len(pairs) and meta["documents"] == len(documents)
    assert meta["max_abs_diff_after_reload"] <= 1e-5
    predictor = load_predictor(out)
    assert isinstance(predictor, StaticPredictor) and predictor.dim == 16
    vectors = predictor.embed(documents)
    assert vectors.shape == (len(documents), 16)
    assert np.array_equal(vectors, load_static_predictor(out).embed(documents))
    scores = predictor.score_pairs([(documents[0], documents[1]), (documents[0], documents[0])])
    assert scores.shape == (2,) and scores[1] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="not empty"):
        train_static(tiny_classifier_dir, documents, pairs, out, config, log=lambda _: None)
