"""Optuna search: trials table, best config saved next to the best model, config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.data import LabelledTexts
from keel.errors import ConfigError
from keel.models import read_meta
from keel.training import ClassifierConfig, Strategy, TextClassifier
from keel.tuning import SearchSpace, TuneConfig, tune_classifier


def test_head_search_saves_best_model_config_and_table(
    tiny_intents: LabelledTexts, tmp_path: Path
) -> None:
    base = ClassifierConfig(strategy="head", show_progress=False, num_threads=1)
    result = tune_classifier(
        tiny_intents, tiny_intents, base, TuneConfig(n_trials=3), out_dir=tmp_path / "best"
    )
    assert len(result.trials) == 3
    assert all(t["state"] == "complete" for t in result.trials)
    assert result.best_score == max(t["score"] for t in result.trials)
    best = json.loads((tmp_path / "best" / "best_config.json").read_text())
    assert best["strategy"] == "head" and best["head_l2"] == result.best_config.head_l2
    assert "| trial | state | val_accuracy |" in (tmp_path / "best" / "tuning.md").read_text()
    assert read_meta(tmp_path / "best").metrics["val_accuracy"] == pytest.approx(result.best_score)
    assert TextClassifier.load(tmp_path / "best").labels == [
        "card_declined",
        "change_pin",
        "refund",
    ]


def test_full_search_space_draws_training_options() -> None:
    import optuna

    space = SearchSpace(learning_rate=(1e-5, 1e-4), epochs=(1, 2), batch_sizes=(8,))
    trial = optuna.trial.FixedTrial(
        {
            "learning_rate": 3e-5,
            "epochs": 2,
            "batch_size": 8,
            "weight_decay": 0.05,
            "warmup_ratio": 0.1,
        }
    )
    params = space.suggest(trial, Strategy.FULL)
    assert params == {
        "learning_rate": 3e-5,
        "epochs": 2,
        "batch_size": 8,
        "weight_decay": 0.05,
        "warmup_ratio": 0.1,
    }


def test_bad_tuning_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="n_trials=0"):
        TuneConfig(n_trials=0)
    with pytest.raises(ConfigError, match="learning_rate"):
        SearchSpace(learning_rate=(1e-3, 1e-5))
