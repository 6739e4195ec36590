"""Config validation: a bad value raises ``ConfigError`` naming the field."""

from __future__ import annotations

import pytest

from keel.errors import ConfigError
from keel.training import ClassifierConfig, PairConfig, Strategy


def test_defaults_depend_on_strategy() -> None:
    assert ClassifierConfig().strategy is Strategy.HEAD
    full = ClassifierConfig(strategy="full")
    assert full.strategy is Strategy.FULL and full.epochs == 4 and full.learning_rate == 5e-5
    assert ClassifierConfig(strategy="full").to_dict()["strategy"] == "full"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strategy", "magic"),
        ("epochs", 0),
        ("learning_rate", -1.0),
        ("batch_size", 0),
        ("warmup_ratio", 1.5),
        ("max_length", 4),
        ("layerwise_lr_decay", 1.5),
        ("device", "tpu"),
        ("early_stopping_patience", -1),
        ("fewshot_pairs_per_example", 0),
        ("head_l2", -1.0),
        ("init_head_l2", -0.5),
        ("max_train_minutes", 0),
        ("max_train_minutes", -1.0),
        ("max_train_minutes", True),
    ],
)
def test_bad_classifier_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        ClassifierConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
    assert f"{field}={value!r}" in str(info.value)


@pytest.mark.parametrize(("field", "value"), [("batch_size", 1), ("scale", 0.0), ("epochs", 0)])
def test_bad_pair_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        PairConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
