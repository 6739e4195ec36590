"""The SQLite store: atomic trend commits, alert de-duplication, silences, outbox claims, rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from finance_monitor.errors import NotFoundError
from finance_monitor.rules import Alert, RuleSpec, load_rules_file
from finance_monitor.silencing import Matcher
from finance_monitor.store import Checkpoint, MonitorStore
from finance_monitor.windows import ClosedWindow


def _alert(key: str, series: str = "topic:Oil") -> Alert:
    labels = {
        "rule": "r",
        "kind": "negative_surge",
        "series": series,
        "series_kind": "topic",
        "severity": "critical",
    }
    return Alert(
        key,
        "r",
        "negative_surge",
        series,
        "critical",
        "tumbling",
        0,
        60,
        0.6,
        0.1,
        0.3,
        30,
        "surge",
        labels,
    )


@pytest.fixture()
def store(tmp_path: Path) -> MonitorStore:
    s = MonitorStore(tmp_path / "fm.db")
    yield s
    s.close()


def test_replayed_alert_is_stored_once_and_checkpoint_round_trips(store: MonitorStore) -> None:
    window = ClosedWindow("tumbling", "topic:Oil", 0, 60, 10, 6, 2, 2)
    new = store.commit_trend_batch(
        "g", "t", {0: Checkpoint(42, {"x": 1})}, [window], [_alert("k1")]
    )
    assert [a.key for a in new] == ["k1"]
    assert store.commit_trend_batch("g", "t", {}, [window], [_alert("k1")]) == []
    assert store.count_alerts() == 1
    assert store.load_checkpoint("g", "t", 0) == Checkpoint(42, {"x": 1})
    assert store.load_checkpoint("g", "t", 1) is None
    (point,) = store.trend_series("topic:Oil")
    assert point["negative_share"] == pytest.approx(0.6)


def test_silenced_alerts_are_never_pending(store: MonitorStore) -> None:
    store.add_silence(
        [Matcher("series", "topic:Oil")], time.time() - 1, time.time() + 60, "t", "maintenance"
    )
    store.commit_trend_batch("g", "t", {}, [], [_alert("a"), _alert("b", series="topic:Gold")])
    claimed = store.claim_pending_alerts("me", older_than=time.time() + 1)
    assert [a.key for a in claimed] == ["b"]
    assert store.get_alert("a")["dispatch_state"] == "silenced"


def test_claims_are_exclusive_and_delivery_is_recorded(store: MonitorStore) -> None:
    store.commit_trend_batch("g", "t", {}, [], [_alert("a")])
    assert len(store.claim_pending_alerts("one", older_than=time.time() + 1)) == 1
    assert store.claim_pending_alerts("two", older_than=time.time() + 1) == []
    store.mark_delivered(["a"], attempts=2, error=None)
    assert store.get_alert("a")["dispatch_state"] == "sent"
    assert store.acknowledge_alert("a", "alice")["status"] == "acknowledged"
    with pytest.raises(NotFoundError):
        store.acknowledge_alert("nope", "alice")


def test_rules_are_seeded_once_and_changes_bump_the_version(store: MonitorStore) -> None:
    assert store.seed_rules(load_rules_file(None))
    assert not store.seed_rules([])
    version = store.rules_version()
    store.upsert_rule(RuleSpec(id="extra", kind="volume_spike"))
    assert store.rules_version() == version + 1
    store.delete_rule("extra")
    with pytest.raises(NotFoundError):
        store.get_rule("extra")
