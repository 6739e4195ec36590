"""Alertmanager-style silences and notification grouping (pure logic)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from finance_monitor.errors import RuleConfigError
from finance_monitor.rules import Alert

LABEL_NAMES = ("rule", "kind", "series", "series_kind", "severity")


@dataclass(frozen=True)
class Matcher:
    """``label = value`` (or ``label =~ regex`` when ``regex``)."""

    name: str
    value: str
    regex: bool = False

    def __post_init__(self) -> None:
        if self.name not in LABEL_NAMES:
            raise RuleConfigError("matchers.name", self.name, f"use one of {list(LABEL_NAMES)}")
        if self.regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise RuleConfigError(
                    "matchers.value", self.value, f"invalid regex: {exc}"
                ) from exc

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this matcher."""
        actual = labels.get(self.name, "")
        return bool(re.fullmatch(self.value, actual)) if self.regex else actual == self.value


@dataclass(frozen=True)
class Silence:
    """Mutes alerts whose labels match every matcher, between ``starts_at`` and ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if not self.matchers:
            raise RuleConfigError("matchers", [], "a silence needs at least one matcher")
        if self.ends_at <= self.starts_at:
            raise RuleConfigError("ends_at", self.ends_at, "must be after starts_at")

    def active(self, now: float) -> bool:
        """Whether the silence is in force at wall-clock time ``now``."""
        return self.starts_at <= now < self.ends_at

    def silences(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether this silence mutes an alert with these labels at ``now``."""
        return self.active(now) and all(m.matches(labels) for m in self.matchers)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        data = asdict(self)
        data["matchers"] = [asdict(m) for m in self.matchers]
        return data


def is_silenced(labels: Mapping[str, str], silences: Iterable[Silence], now: float) -> bool:
    """Whether any active silence mutes these labels."""
    return any(s.silences(labels, now) for s in silences)


@dataclass
class AlertGroup:
    """Alerts that share the values of the ``group_by`` labels; sent as one notification."""

    key: str
    labels: dict[str, str]
    alerts: list[Alert] = field(default_factory=list)

    def webhook_payload(self) -> dict[str, Any]:
        """Notification body, shaped like Alertmanager's webhook payload."""
        return {
            "version": "1",
            "groupKey": self.key,
            "status": "firing",
            "groupLabels": self.labels,
            "alerts": [
                {
                    "status": "firing",
                    "key": a.key,
                    "labels": a.labels,
                    "annotations": {"summary": a.summary},
                    "startsAt": a.window_start,
                    "endsAt": a.window_end,
                    "value": a.value,
                    "baseline": a.baseline,
                }
                for a in self.alerts
            ],
        }


def group_alerts(alerts: Iterable[Alert], group_by: list[str]) -> list[AlertGroup]:
    """Group alerts by the values of ``group_by`` labels, keeping first-seen order."""
    for name in group_by:
        if name not in LABEL_NAMES:
            raise RuleConfigError("group_by", name, f"use labels from {list(LABEL_NAMES)}")
    groups: dict[str, AlertGroup] = {}
    for alert in alerts:
        labels = {name: alert.labels.get(name, "") for name in group_by}
        key = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        groups.setdefault(key, AlertGroup(key=key, labels=labels)).alerts.append(alert)
    return list(groups.values())
