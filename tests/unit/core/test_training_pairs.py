"""Bi-encoder and cross-encoder training on tiny pair data: loss falls, artifacts load back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keel.errors import DataError
from keel.models import read_meta
from keel.training import PairConfig, cross_encoder_scores, train_bi_encoder, train_cross_encoder

PAIRS = [
    ("how do I reset my pin", "To change your PIN, open the card settings and choose a new PIN."),
    ("my card was declined", "Card payments can be declined when the balance is too low."),
    ("when will my refund arrive", "Refunds reach your account within five working days."),
    (
        "is my car covered after an accident",
        "Collision cover pays for damage to your car in an accident.",
    ),
    (
        "does home insurance cover floods",
        "Flood damage to your home is covered by the flood add-on.",
    ),
    ("how much is life insurance", "Life insurance premiums depend on age and health."),
]


def pair_config(**kwargs: object) -> PairConfig:
    defaults: dict[str, object] = {
        "show_progress": False,
        "num_threads": 1,
        "batch_size": 6,
        "max_length": 32,
        "learning_rate": 5e-5,
        "warmup_ratio": 0.0,
    }
    defaults.update(kwargs)
    return PairConfig(**defaults)  # type: ignore[arg-type]


def test_bi_encoder_trains_and_saves_an_encoder_artifact(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = train_bi_encoder(PAIRS, pair_config(epochs=3), val=PAIRS, out_dir=tmp_path / "bi")
    meta = read_meta(folder)
    assert meta.task == "encoder" and meta.normalize
    losses = [row["train_loss"] for row in meta.metrics["history"]]
    assert losses[-1] < losses[0]
    assert meta.metrics["val_mrr_at_10"] >= meta.metrics["val_mrr_at_10_before"]
    model = SentenceTransformer(str(folder / "encoder"), device="cpu")
    vectors = model.encode([q for q, _ in PAIRS], normalize_embeddings=True)
    assert vectors.shape == (6, 384)
    assert (folder / "README.md").is_file()


def test_cross_encoder_trains_and_loads_with_transformers(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    examples = [(q, a, 1.0) for q, a in PAIRS]
    examples += [(PAIRS[i][0], PAIRS[(i + 3) % 6][1], 0.0) for i in range(6)]
    folder = train_cross_encoder(
        examples, pair_config(epochs=4, learning_rate=1e-4), tmp_path / "ce", val=examples
    )
    meta = read_meta(folder)
    assert meta.task == "cross_encoder"
    losses = [row["train_loss"] for row in meta.metrics["history"]]
    assert losses[-1] < losses[0]
    model = AutoModelForSequenceClassification.from_pretrained(str(folder / "encoder"))
    assert model.config.num_labels == 1
    scores = cross_encoder_scores(folder, [(a, b) for a, b, _ in examples])
    assert scores.shape == (12,) and np.all((scores >= 0) & (scores <= 1))
    from keel.evaluation import auc

    assert auc([y for _, _, y in examples], scores) == pytest.approx(
        meta.metrics["val_auc"], abs=1e-6
    )


def test_pair_input_errors() -> None:
    with pytest.raises(DataError, match="no pairs"):
        train_bi_encoder([], pair_config())
    with pytest.raises(DataError, match="item 1"):
        train_bi_encoder([("a", "b"), ("", "c")], pair_config())
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        train_cross_encoder([("a", "b", 2.0)], pair_config())
