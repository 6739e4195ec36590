"""The finance models as prepared by default carry a static tier: the served predictor is
the cascade, it classifies, and on the held-out slice its accuracy stays within the
bound of the transformer alone (recomputed here through the served path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from finance_monitor.model_prep import (
    STATIC_DIR,
    PrepConfig,
    load_scoring_model,
    load_training_sets,
    prepare_models,
)
from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD, score_texts, tier_status
from keel.compression.static_tier import holdout_split
from keel.inference import CascadePredictor


def test_prepared_static_tier_serves_a_cascade_within_the_bound(fm_models_dir: Path) -> None:
    served = prepare_models(
        PrepConfig(models_dir=fm_models_dir, show_progress=False), progress=lambda _m: None
    )
    tier_meta = json.loads((served / STATIC_DIR / "static_tier.json").read_text())
    cascade_meta = tier_meta["cascade"]
    keel_meta = json.loads((served / "keel.json").read_text())
    assert keel_meta["config"]["static_tier"] == cascade_meta
    model = load_scoring_model(served)
    if not cascade_meta["enabled"]:  # allowed, but then it must say why and not serve
        assert cascade_meta["reason"]
        assert not isinstance(model.predictor, CascadePredictor)
        return
    cascade = model.predictor
    assert isinstance(cascade, CascadePredictor)
    assert 0.0 < cascade_meta["expected_static_share"] <= 1.0

    verdicts = score_texts(model, ["Acme shares jump after record quarterly profit", ""])
    assert verdicts[0].topic in model.topic_labels
    assert set(verdicts[0].sentiment_scores) == set(model.sentiment_labels)

    # The held-out slice of each head (the rows the static heads were not fitted on).
    sets = load_training_sets(None)
    bound = cascade_meta["max_drop_points"] / 100 + 1e-9
    for head, texts, labels in (
        (TOPIC_HEAD, sets.topic_texts, sets.topic_labels),
        (SENTIMENT_HEAD, sets.sentiment_texts, sets.sentiment_labels),
    ):
        _, held = holdout_split(len(texts), 0.2, 2000)
        assert len(held) == tier_meta["heads"][head]["slice_rows"]
        slice_texts = [texts[i] for i in held]
        gold = np.asarray([labels[i] for i in held])
        names = np.asarray(cascade.static.head_labels(head))
        served_pred = names[cascade.classify_heads(slice_texts)[head].argmax(axis=1)]
        alone_pred = names[cascade.fallback.classify_heads(slice_texts)[head].argmax(axis=1)]
        served_acc = float((served_pred == gold).mean())
        alone_acc = float((alone_pred == gold).mean())
        assert served_acc >= alone_acc - bound, (head, served_acc, alone_acc)
    status = tier_status(model)
    assert status["state"] == "on" and status["static_texts"] + status["transformer_texts"] > 0
