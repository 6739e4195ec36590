"""Silences and alert grouping."""

from __future__ import annotations

import pytest

from finance_monitor.alertmanager import webhook_payload
from finance_monitor.errors import RuleConfigError
from finance_monitor.rules import Alert
from finance_monitor.silencing import Matcher, Silence, group_alerts, is_silenced


def _alert(key: str, rule: str, series: str) -> Alert:
    labels = {
        "rule": rule,
        "kind": "negative_surge",
        "series": series,
        "series_kind": "topic",
        "severity": "critical",
    }
    return Alert(
        key,
        rule,
        "negative_surge",
        series,
        "critical",
        "tumbling",
        0,
        60,
        0.5,
        0.1,
        0.3,
        20,
        "s",
        labels,
    )


def test_silence_matches_labels_within_its_time_range() -> None:
    silence = Silence(
        "s1", (Matcher("series", "topic:Oil"), Matcher("rule", "surge.*", regex=True)), 100, 200
    )
    labels = _alert("k", "surge-topic", "topic:Oil").labels
    assert is_silenced(labels, [silence], now=150)
    assert not is_silenced(labels, [silence], now=250)
    assert not is_silenced({**labels, "series": "topic:Gold"}, [silence], now=150)


def test_invalid_silences_are_rejected() -> None:
    with pytest.raises(RuleConfigError, match="ends_at"):
        Silence("s", (Matcher("rule", "x"),), 10, 5)
    with pytest.raises(RuleConfigError, match=r"matchers\.name"):
        Matcher("colour", "red")
    with pytest.raises(RuleConfigError, match="regex"):
        Matcher("rule", "(", regex=True)


def test_alerts_are_grouped_by_labels() -> None:
    alerts = [
        _alert("a", "r1", "topic:Oil"),
        _alert("b", "r1", "topic:Gold"),
        _alert("c", "r2", "topic:Oil"),
    ]
    groups = group_alerts(alerts, ["rule"])
    assert [[a.key for a in g.alerts] for g in groups] == [["a", "b"], ["c"]]
    payload = webhook_payload(
        [a.as_dict() for a in groups[0].alerts], ["rule"], "firing", "http://dash"
    )
    assert payload["groupLabels"] == {"rule": "r1"}
    assert [a["annotations"]["alert_key"] for a in payload["alerts"]] == ["a", "b"]
    assert payload["commonLabels"] == {
        "alertname": "NegativeSentimentSurge",
        "rule": "r1",
        "kind": "topic",
        "severity": "critical",
    }


@pytest.mark.parametrize(
    ("op", "value", "silenced"),
    [
        ("=", "topic:Oil", True),
        ("=", "topic:Gold", False),
        ("!=", "topic:Gold", True),
        ("!=", "topic:Oil", False),
        ("=~", "topic:.*", True),
        ("=~", "topic", False),  # anchored: the whole value must match
        ("!~", "ticker:.*", True),
        ("!~", "topic:O.*", False),
    ],
)
def test_every_matcher_operator(op: str, value: str, silenced: bool) -> None:
    silence = Silence("s", (Matcher.parse("series", op, value),), 0, 100)
    labels = _alert("k", "r", "topic:Oil").labels
    assert is_silenced(labels, [silence], now=50) is silenced
    assert not is_silenced(labels, [silence], now=100)  # expired


def test_matchers_see_the_alertmanager_labels() -> None:
    labels = _alert("k", "r", "topic:Oil").labels
    for matcher in (
        Matcher("alertname", "NegativeSentimentSurge"),
        Matcher("kind", "topic"),
        Matcher("series_kind", "topic"),
        Matcher("rule_kind", "negative_surge"),
        # the older meaning of ``kind`` (the rule's kind) still matches
        Matcher("kind", "negative_surge"),
    ):
        assert is_silenced(labels, [Silence("s", (matcher,), 0, 100)], now=1), matcher
    assert Matcher("kind", "negative_surge").name == "rule_kind"
    with pytest.raises(RuleConfigError, match=r"matchers\.op"):
        Matcher.parse("rule", "==", "x")
