"""``keel.json`` metadata: round trip and clear errors for missing or bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ArtifactError
from keel.models import ArtifactMeta, head_file_name, read_meta, render_model_card, write_meta


def test_meta_round_trip(tmp_path: Path) -> None:
    meta = ArtifactMeta(
        task="classifier",
        labels=["a", "b"],
        heads={"topic": {"labels": ["a", "b"], "multi_label": False}},
        config={"strategy": "head"},
        metrics={"val_accuracy": 0.9},
        max_length=32,
    )
    path = write_meta(tmp_path / "model", meta)
    assert path.name == "keel.json"
    back = read_meta(tmp_path / "model")
    assert back == meta
    assert back.to_dict()["format"] == 1
    assert back.head_names == ["topic"]


def test_missing_folder_and_missing_meta(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="model folder not found"):
        read_meta(tmp_path / "absent")
    with pytest.raises(ArtifactError, match=r"keel\.json: not found"):
        read_meta(tmp_path)


def test_bad_json_and_bad_values(tmp_path: Path) -> None:
    (tmp_path / "keel.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_meta(tmp_path)
    (tmp_path / "keel.json").write_text('{"format": 1, "task": "translator"}', encoding="utf-8")
    with pytest.raises(ArtifactError, match="task='translator'"):
        read_meta(tmp_path)
    (tmp_path / "keel.json").write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(ArtifactError, match="format=99"):
        read_meta(tmp_path)
    (tmp_path / "keel.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ArtifactError, match="expected a JSON object"):
        read_meta(tmp_path)


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "keel.json").write_text('{"format": 1, "task": "encoder", "future_key": 3}')
    assert read_meta(tmp_path).task == "encoder"


def test_head_file_names_and_card() -> None:
    assert head_file_name("default") == "head.safetensors"
    assert head_file_name("sentiment") == "head-sentiment.safetensors"
    card = render_model_card(ArtifactMeta(labels=["x", "y"], metrics={"val_accuracy": 0.5}))
    assert "val_accuracy" in card and "| default | 2: x, y | False |" in card
