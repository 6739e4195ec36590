"""Alert rules: EWMA baselines, thresholds, min volume, cooldown, stable keys, YAML config."""

from __future__ import annotations

import pytest

from finance_monitor.errors import RuleConfigError
from finance_monitor.rules import (
    Ewma,
    RuleEngine,
    RuleSpec,
    alert_key,
    load_rules_file,
    load_rules_yaml,
)
from finance_monitor.windows import ClosedWindow


def _window(
    i: int, count: int, negative: int, positive: int = 0, series: str = "topic:Oil"
) -> ClosedWindow:
    return ClosedWindow(
        spec="tumbling",
        series=series,
        start=i * 60.0,
        end=(i + 1) * 60.0,
        count=count,
        negative=negative,
        neutral=count - negative - positive,
        positive=positive,
    )


SURGE = RuleSpec(
    id="surge",
    kind="negative_surge",
    min_volume=10,
    k=3,
    min_delta=0.2,
    min_history=3,
    cooldown_s=120,
)


def test_ewma_tracks_mean_and_variance() -> None:
    e = Ewma(alpha=0.5)
    for v in (1.0, 1.0, 1.0):
        e.update(v)
    assert (e.mean, e.std, e.n) == (1.0, 0.0, 3)
    e.update(3.0)
    assert e.mean == pytest.approx(2.0)
    assert e.std > 0


def test_negative_surge_fires_once_then_cools_down() -> None:
    engine = RuleEngine([SURGE])
    fired = []
    shares = [2, 3, 2, 2, 9, 9, 9, 2, 2]  # negatives out of 20
    for i, neg in enumerate(shares):
        fired += [(i, a) for a in engine.evaluate(_window(i, 20, neg))]
    assert [i for i, _ in fired] == [4]  # windows 5 and 6 are inside the 120 s cooldown
    alert = fired[0][1]
    assert alert.key == alert_key("surge", "topic:Oil", "tumbling", 240.0)
    assert alert.value == pytest.approx(0.45)
    assert alert.labels["series_kind"] == "topic"
    assert "Negative sentiment surge on Oil" in alert.summary


def test_surge_needs_history_and_volume() -> None:
    engine = RuleEngine([SURGE])
    assert engine.evaluate(_window(0, 20, 18)) == []  # no baseline yet
    engine = RuleEngine([SURGE])
    for i in range(3):
        engine.evaluate(_window(i, 20, 2))
    assert engine.evaluate(_window(3, 5, 5)) == []  # below min_volume


def test_small_noise_does_not_fire() -> None:
    engine = RuleEngine([SURGE])
    alerts = [
        a
        for i, neg in enumerate([2, 4, 1, 3, 5, 2, 4, 3, 1, 5] * 3)
        for a in engine.evaluate(_window(i, 20, neg))
    ]
    assert alerts == []


def test_volume_spike_and_reversal() -> None:
    spike = RuleSpec(
        id="spike", kind="volume_spike", min_volume=5, factor=3, k=3, min_delta=5, min_history=3
    )
    rev = RuleSpec(
        id="rev",
        kind="sentiment_reversal",
        series="ticker",
        min_volume=5,
        threshold=0.4,
        min_history=3,
    )
    engine = RuleEngine([spike, rev])
    for i in range(4):
        assert engine.evaluate(_window(i, 10, 0, positive=8, series="ticker:NWE")) == []
    (alert,) = engine.evaluate(_window(4, 10, 8, positive=1, series="ticker:NWE"))
    assert alert.rule_id == "rev"
    assert (
        engine.evaluate(_window(5, 40, 0, series="ticker:NWE")) == []
    )  # spike watches topics only
    for i in range(6, 10):
        engine.evaluate(_window(i, 10, 0, series="topic:Oil"))
    (alert,) = engine.evaluate(_window(10, 45, 0, series="topic:Oil"))
    assert (alert.rule_id, alert.value) == ("spike", 45.0)


def test_rule_state_snapshot_restores_cooldown() -> None:
    engine = RuleEngine([SURGE])
    for i, neg in enumerate([2, 2, 2, 10]):
        engine.evaluate(_window(i, 20, neg))
    restored = RuleEngine([SURGE])
    restored.load_state(engine.to_state())
    assert restored.evaluate(_window(4, 20, 12)) == []  # still cooling down after restart


def test_disabled_rule_and_other_series_kind_are_skipped() -> None:
    engine = RuleEngine(
        [RuleSpec(id="t", kind="negative_surge", series="ticker", min_history=1, min_volume=1)]
    )
    engine.evaluate(_window(0, 20, 0))
    assert engine.evaluate(_window(1, 20, 20)) == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "x", "kind": "explode"}, "kind"),
        ({"id": "x", "kind": "volume_spike", "alpha": 0}, "alpha"),
        ({"id": "x", "kind": "volume_spike", "min_volume": 0}, "min_volume"),
        ({"id": "x", "kind": "volume_spike", "colour": "red"}, "colour"),
        ({"kind": "volume_spike"}, "id"),
        ({"id": "x", "kind": "volume_spike", "severity": "meh"}, "severity"),
    ],
)
def test_invalid_rule_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        RuleSpec.from_dict(data)
    assert info.value.field == field


def test_yaml_errors_name_the_rule_index_and_bundled_rules_load() -> None:
    with pytest.raises(RuleConfigError, match=r"rules\[1\]\.k"):
        load_rules_yaml(
            "rules:\n  - {id: a, kind: volume_spike}\n  - {id: b, kind: volume_spike, k: -1}\n"
        )
    with pytest.raises(RuleConfigError, match="unique"):
        load_rules_yaml(
            "rules:\n  - {id: a, kind: volume_spike}\n  - {id: a, kind: volume_spike}\n"
        )
    ids = [r.id for r in load_rules_file(None)]
    assert "negative-surge-topic" in ids
