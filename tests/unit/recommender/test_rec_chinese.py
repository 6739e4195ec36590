"""The Chinese catalogue slice of the demo data and the encoder setting."""

from __future__ import annotations

import re

import pytest

from recommender.config import Settings
from recommender.datasets import load_demo
from recommender.prepare import train_config_from

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_demo_data_has_a_chinese_slice_with_topics() -> None:
    data = load_demo()
    chinese = [it for it in data.items if HAN.search(it.title)]
    assert len(chinese) == 30
    assert all(HAN.search(it.text) for it in chinese)
    assert {c for it in chinese for c in it.categories} == {
        "programming",
        "baking",
        "finance",
        "photography",
    }
    # the English catalogue is still there, untouched by the slice
    assert sum(1 for it in data.items if not HAN.search(it.title)) == 360


def test_chinese_demo_users_liked_chinese_items_of_one_topic() -> None:
    data = load_demo()
    items = {it.id: it for it in data.items}
    zh_users = [uid for uid, name in data.users.items() if HAN.search(name)]
    assert len(zh_users) == 4
    for uid in zh_users:
        liked = [r.item_id for r in data.interactions if r.user_id == uid]
        assert len(liked) >= 5
        assert all(HAN.search(items[i].title) for i in liked)
        assert len({items[i].categories[0] for i in liked}) == 1


def test_base_model_setting_reaches_the_training_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_REC_BASE_MODEL", "me5-small")
    settings = Settings(api_key="k" * 32)
    assert settings.base_model == "me5-small"
    assert train_config_from(settings, show_progress=False).base_model == "me5-small"
    monkeypatch.delenv("KEEL_REC_BASE_MODEL")
    assert train_config_from(Settings(api_key="k" * 32)).base_model == "minilm"


def test_empty_base_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_REC_BASE_MODEL", "")
    with pytest.raises(ValueError, match="base_model"):
        Settings(api_key="k" * 32)
