"""recommender.static_encoder: when prepare trains and serves the static table, and how a
static folder is tagged and fingerprinted (no model is trained here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from recommender.catalogue import encoder_tag
from recommender.datasets import load_demo
from recommender.static_encoder import (
    MIN_VALIDATION_CASES,
    choose_encoder_form,
    validation_lift,
)
from recommender.training import TrainConfig


def test_off_and_a_base_encoder_serve_the_transformer_without_training(tmp_path: Path) -> None:
    data = load_demo()
    config = TrainConfig(show_progress=False)
    encoder = tmp_path / "encoder"
    for setting, source in (("off", encoder), ("on", "minilm"), ("auto", "minilm")):
        served, choice = choose_encoder_form(
            source, "transformer-form", tmp_path / "static", setting, data.items, [], config
        )
        assert served == "transformer-form" and choice.served == "transformer"
        assert choice.setting == setting and choice.reason
    assert not (tmp_path / "static").exists()


def test_auto_keeps_the_transformer_on_too_few_validation_cases(tmp_path: Path) -> None:
    data = load_demo()  # 40 users: far fewer validation cases than the minimum
    served, choice = choose_encoder_form(
        tmp_path / "encoder",  # never opened: the case count decides first
        "transformer-form",
        tmp_path / "static",
        "auto",
        data.items,
        data.interactions,
        TrainConfig(show_progress=False),
    )
    assert served == "transformer-form" and choice.served == "transformer"
    assert 0 < choice.validation_cases < MIN_VALIDATION_CASES
    assert str(MIN_VALIDATION_CASES) in choice.reason
    assert choice.as_dict()["validation_lift"] == {}
    assert not (tmp_path / "static").exists()


def test_validation_lift_without_cases_is_none() -> None:
    data = load_demo()
    vectors = np.random.default_rng(0).normal(size=(len(data.items), 8)).astype(np.float32)
    lift, metrics = validation_lift(
        data.items, vectors, data.interactions, [], TrainConfig(show_progress=False)
    )
    assert lift is None and metrics["cases"] == 0


def test_a_static_folder_is_tagged_by_its_tier_file(tmp_path: Path) -> None:
    folder = tmp_path / "static"
    folder.mkdir()
    assert encoder_tag(folder) == "static:0"
    tier = folder / "static_tier.json"
    tier.write_text("{}")
    stamp = time.time_ns() - 10**9
    os.utime(tier, ns=(stamp, stamp))
    assert encoder_tag(folder) == f"static:{stamp}"


@pytest.mark.parametrize("setting", ["auto", "on", "off"])
def test_the_setting_is_validated_and_read_from_the_environment(
    setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from recommender.config import Settings

    monkeypatch.setenv("KEEL_REC_STATIC_ENCODER", setting)
    assert Settings().static_encoder == setting
    monkeypatch.setenv("KEEL_REC_STATIC_ENCODER", "sometimes")
    with pytest.raises(ValidationError, match="static_encoder"):
        Settings()
