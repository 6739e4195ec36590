"""Each strategy trains for a few steps on tiny data: the loss falls, save -> load is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keel.data import LabelledTexts
from keel.errors import ConfigError, DataError
from keel.inference import MicroBatcher, Predictor
from keel.models import read_meta
from keel.training import ClassifierConfig, TextClassifier, train_classifier, train_multi_head


def config(strategy: str, **kwargs: object) -> ClassifierConfig:
    defaults: dict[str, object] = {"show_progress": False, "num_threads": 1, "batch_size": 6}
    defaults.update(kwargs)
    return ClassifierConfig(strategy=strategy, **defaults)  # type: ignore[arg-type]


def assert_same_predictions(model: TextClassifier, folder: Path, texts: list[str]) -> None:
    loaded = TextClassifier.load(folder)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5)
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.labels == model.labels


def test_head_strategy_fits_saves_and_loads(tiny_intents: LabelledTexts, tmp_path: Path) -> None:
    model = train_classifier(tiny_intents, config("head"), val=tiny_intents)
    row = model.history[-1]
    assert row["train_loss"] < row["head_loss_start"]
    assert model.metrics["val_accuracy"] >= 0.9
    assert model.predict(["my card got declined again"]) == ["card_declined"]
    folder = model.save(tmp_path / "m")
    for name in ("keel.json", "head.safetensors", "README.md", "encoder/modules.json"):
        assert (folder / name).is_file(), name
    meta = read_meta(folder)
    assert meta.labels == ["card_declined", "change_pin", "refund"]
    assert meta.data_fingerprint and meta.size_mb and meta.size_mb > 1
    assert "p50_batch1" in meta.latency_ms
    assert_same_predictions(model, folder, tiny_intents.texts)


def test_full_strategy_loss_falls_and_best_epoch_is_kept(
    tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    model = train_classifier(
        tiny_intents,
        config("full", epochs=3, learning_rate=1e-4, early_stopping_patience=0),
        val=tiny_intents,
    )
    epochs = [row for row in model.history if row.get("epoch", 0) >= 1]
    assert len(epochs) == 3
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert any(row.get("best") for row in epochs)
    assert all("val_score" in row for row in epochs)
    folder = model.save(tmp_path / "full", measure_latency=False)
    assert_same_predictions(model, folder, tiny_intents.texts)


def test_full_strategy_starts_no_epoch_past_its_time_budget(tiny_intents: LabelledTexts) -> None:
    # A budget far shorter than one epoch: the first epoch always runs, no second starts.
    model = train_classifier(
        tiny_intents,
        config("full", epochs=3, early_stopping_patience=0, max_train_minutes=1e-4),
        val=tiny_intents,
    )
    epochs = [row for row in model.history if row.get("epoch", 0) >= 1]
    assert len(epochs) == 1
    assert "time budget" in epochs[0]["stopped"]
    assert epochs[0].get("best") and model.predict(tiny_intents.texts[:2])
    unlimited = train_classifier(
        tiny_intents, config("full", epochs=2, early_stopping_patience=0, max_train_minutes=None)
    )
    assert len([row for row in unlimited.history if row.get("epoch", 0) >= 1]) == 2


def test_full_strategy_options_class_weights_and_layer_decay(tiny_intents: LabelledTexts) -> None:
    model = train_classifier(
        tiny_intents,
        config("full", epochs=2, class_weights=True, layerwise_lr_decay=0.8, seed=3),
    )
    losses = [row["train_loss"] for row in model.history if row.get("epoch", 0) >= 1]
    assert losses[-1] < losses[0]


def test_same_seed_repeats_the_run(tiny_intents: LabelledTexts) -> None:
    first = train_classifier(tiny_intents, config("full", epochs=1, seed=5))
    second = train_classifier(tiny_intents, config("full", epochs=1, seed=5))
    np.testing.assert_allclose(
        first.predict_proba(tiny_intents.texts[:4]),
        second.predict_proba(tiny_intents.texts[:4]),
        atol=1e-5,
    )


def test_fewshot_strategy_contrastive_loss_falls(
    tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    model = train_classifier(
        tiny_intents, config("fewshot", epochs=2, fewshot_pairs_per_example=4, learning_rate=5e-5)
    )
    contrastive = [row["contrastive_loss"] for row in model.history if "contrastive_loss" in row]
    assert len(contrastive) == 2 and contrastive[-1] < contrastive[0]
    folder = model.save(tmp_path / "fs", measure_latency=False)
    assert_same_predictions(model, folder, tiny_intents.texts)


def test_fewshot_multi_label(tmp_path: Path) -> None:
    texts = [
        "card declined and I want a refund",
        "refund my money please",
        "my card was refused",
        "card blocked, refund the fee",
        "I need my money back",
        "terminal rejected my card",
    ]
    labels = [["card", "refund"], ["refund"], ["card"], ["card", "refund"], ["refund"], ["card"]]
    data = LabelledTexts(texts, labels)
    model = train_classifier(data, config("fewshot", fewshot_pairs_per_example=4))
    assert model.multi_label
    probs = model.predict_proba(texts)
    assert probs.shape == (6, 2) and np.all((probs >= 0) & (probs <= 1))
    predicted = model.predict(texts)
    assert all(isinstance(row, list) for row in predicted)
    folder = model.save(tmp_path / "ml", measure_latency=False)
    assert read_meta(folder).multi_label
    assert_same_predictions(model, folder, texts)


def test_multi_head_shares_one_encoder(tiny_intents: LabelledTexts, tmp_path: Path) -> None:
    sentiment = LabelledTexts(
        tiny_intents.texts, ["negative" if i % 6 < 3 else "neutral" for i in range(18)]
    )
    model = train_multi_head(
        {"intent": tiny_intents, "sentiment": sentiment},
        config("full", epochs=2),
        val={"sentiment": sentiment},
    )
    assert model.head_names == ["intent", "sentiment"]
    out = model.classify_heads(["my card was declined"])
    assert out["intent"].shape == (1, 3) and out["sentiment"].shape == (1, 2)
    assert "sentiment.val_accuracy" in model.metrics
    folder = model.save(tmp_path / "mh", measure_latency=False)
    for name in ("head-intent.safetensors", "head-sentiment.safetensors", "head.safetensors"):
        assert (folder / name).is_file()
    meta = read_meta(folder)
    assert list(meta.heads) == ["intent", "sentiment"] and meta.labels == model.labels
    loaded = TextClassifier.load(folder)
    for head in ("intent", "sentiment"):
        np.testing.assert_allclose(
            loaded.predict_proba(tiny_intents.texts, head=head),
            model.predict_proba(tiny_intents.texts, head=head),
            atol=1e-5,
        )


def test_cross_head_soft_labels_train_each_head_on_the_other_heads_texts(
    tiny_intents: LabelledTexts,
) -> None:
    """Two heads labelled on different texts: from epoch 2 each batch also fits the other
    head to the model's own soft labels (taken after epoch 1), so the loss of epoch 2
    differs from the same seeded run without them while epoch 1 is identical."""
    moods = LabelledTexts(
        [
            "this bank is great",
            "love the new app",
            "terrible service again",
            "worst support ever",
            "really happy with it",
            "so angry about the fees",
        ],
        ["positive", "positive", "negative", "negative", "positive", "negative"],
    )
    heads = {"intent": tiny_intents, "mood": moods}
    options = {"epochs": 2, "early_stopping_patience": 0, "seed": 3, "max_train_minutes": None}
    plain = train_multi_head(heads, config("full", **options))
    crossed = train_multi_head(heads, config("full", cross_head_weight=1.0, **options))
    plain_rows = [row for row in plain.history if row.get("epoch", 0) >= 1]
    crossed_rows = [row for row in crossed.history if row.get("epoch", 0) >= 1]
    assert crossed_rows[0]["cross_head_rows"] == len(tiny_intents) + len(moods)
    assert "cross_head_rows" not in crossed_rows[1]  # no pass after the last epoch
    assert "cross_head_rows" not in plain_rows[0]
    assert crossed_rows[0]["train_loss"] == pytest.approx(plain_rows[0]["train_loss"], rel=1e-6)
    # Epoch 2 trains on the soft labels too (the KL term starts at 0, the model as it
    # was when they were taken, and grows as it moves): the run departs from the plain one.
    assert crossed_rows[1]["train_loss"] != pytest.approx(plain_rows[1]["train_loss"], rel=1e-6)


def test_cross_head_targets_skip_heads_labelled_on_the_same_texts(base_encoder) -> None:  # type: ignore[no-untyped-def]
    from keel.models._heads import LinearHead
    from keel.training._encoder import tokenize
    from keel.training._full import TaskData, cross_head_targets
    from keel.training._heads import encode_targets

    rng = np.random.default_rng(0)
    texts = ["card declined", "refund please", "change my pin"]
    other = ["great bank", "awful fees"]

    def head(name: str, labels: list[str]) -> LinearHead:
        weight = rng.normal(size=(len(labels), 384)).astype(np.float32)
        return LinearHead(name, labels, weight, np.zeros(len(labels), np.float32))

    def task(rows: list[str], labels: list[str]) -> TaskData:
        ids = tokenize(base_encoder, rows, 16)
        return TaskData(ids, encode_targets(LabelledTexts(rows, labels), False))

    heads = {
        "intent": head("intent", ["a", "b", "c"]),
        "urgency": head("urgency", ["high", "low"]),
        "mood": head("mood", ["negative", "positive"]),
    }
    train = {
        "intent": task(texts, ["a", "b", "c"]),
        "urgency": task(texts, ["high", "low", "low"]),
        "mood": task(other, ["positive", "negative"]),
    }
    soft = cross_head_targets(
        base_encoder, heads, train, batch_size=8, device="cpu", normalize=True
    )
    # intent and urgency share their texts: each gets only mood's soft labels.
    assert sorted(soft["intent"]) == ["mood"] and sorted(soft["urgency"]) == ["mood"]
    assert sorted(soft["mood"]) == ["intent", "urgency"]
    assert tuple(soft["mood"]["intent"].shape) == (2, 3)
    np.testing.assert_allclose(soft["intent"]["mood"].sum(dim=1).numpy(), 1.0, rtol=1e-5)


def test_training_input_errors(tiny_intents: LabelledTexts) -> None:
    with pytest.raises(DataError, match="at least two labels"):
        train_classifier(LabelledTexts(["a", "b"], ["x", "x"]), config("head"))
    with pytest.raises(DataError, match="validation labels not in training data"):
        train_classifier(tiny_intents, config("head"), val=LabelledTexts(["q"], ["unknown"]))
    with pytest.raises(ConfigError, match="fewshot trains one head"):
        train_multi_head({"a": tiny_intents, "b": tiny_intents}, config("fewshot"))
    with pytest.raises(ConfigError, match="cross_head_weight"):
        config("full", cross_head_weight=-0.5)


def test_session_artifact_fixture_loads(tiny_classifier_dir: Path) -> None:
    model = TextClassifier.load(tiny_classifier_dir)
    assert model.predict(["how can I change my pin"]) == ["change_pin"]


def test_temperature_is_saved_and_softens_probabilities(
    tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    model = TextClassifier.load(tiny_classifier_dir)
    texts = ["my card was declined", "refund please"]
    sharp = model.predict_proba(texts)
    model.temperature = 3.0
    soft = model.predict_proba(texts)
    assert soft.max() < sharp.max()
    assert (soft.argmax(1) == sharp.argmax(1)).all()
    folder = model.save(tmp_path / "calibrated", measure_latency=False)
    assert read_meta(folder).temperature == 3.0
    np.testing.assert_allclose(TextClassifier.load(folder).predict_proba(texts), soft, atol=1e-6)


def _serve_labels(predictor: Predictor, texts: list[str]) -> list[str]:
    """Code written for a loaded ``Predictor``: a micro-batcher over its top-1 labels."""
    batcher: MicroBatcher[str, str] = MicroBatcher(
        lambda batch: predictor.predict_labels(batch), max_batch_size=4, max_wait_ms=1.0
    )
    try:
        return [batcher.submit(text, timeout_s=120.0) for text in texts]
    finally:
        batcher.close()


def test_a_text_classifier_serves_wherever_a_predictor_does(
    tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    model = train_classifier(tiny_intents, config("head"))
    assert isinstance(model, Predictor)
    texts = list(tiny_intents.texts[:6])
    assert _serve_labels(model, texts) == model.predict(texts)
    assert model.heads == ["default"] and model.dim == model.embed(texts[:1]).shape[1]
    probs = model.classify(texts)
    np.testing.assert_allclose(model.classify_heads(texts)["default"], probs, atol=1e-6)
    # The same answers as the artifact loaded by the inference runtime.
    from keel.inference import load_predictor

    loaded = load_predictor(model.save(tmp_path / "m", measure_latency=False))
    np.testing.assert_allclose(loaded.classify(texts), probs, atol=1e-4)
    assert loaded.predict_labels(texts) == model.predict_labels(texts)
    scores = model.score_pairs([(texts[0], texts[0]), (texts[0], texts[1])])
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and scores[1] < scores[0]


def test_a_head_temperature_is_kept_per_head_through_save_and_load(
    tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    from keel.inference import load_predictor

    model = train_classifier(tiny_intents, config("head"))
    texts = list(tiny_intents.texts[:4])
    sharp = model.classify(texts)
    model.temperature = 4.0
    soft = model.classify(texts)
    assert soft.max(axis=1).mean() < sharp.max(axis=1).mean()
    folder = model.save(tmp_path / "calibrated", measure_latency=False)
    assert read_meta(folder).temperature == 4.0
    assert TextClassifier.load(folder).temperature == 4.0
    np.testing.assert_allclose(load_predictor(folder).classify(texts), soft, atol=1e-4)
