"""Silences with Alertmanager's matchers, and notification grouping (pure logic).

Silences and grouping see an alert's Alertmanager labels (``alertname``, ``rule``,
``series``, ``kind`` = topic | ticker, ``severity``) plus ``series_kind`` and
``rule_kind`` (see :func:`finance_monitor.alertmanager.match_labels`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from finance_monitor.alertmanager import match_labels
from finance_monitor.errors import RuleConfigError
from finance_monitor.rules import Alert, RuleKind

LABEL_NAMES = ("alertname", "rule", "series", "kind", "severity", "series_kind", "rule_kind")
OPERATORS = {"=": (False, True), "!=": (False, False), "=~": (True, True), "!~": (True, False)}
_RULE_KINDS = {k.value for k in RuleKind}


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``=``, ``!=``, ``=~`` or ``!~`` (Alertmanager's ``isRegex`` and
    ``isEqual``). Regexes are anchored (the whole value must match), as in Alertmanager.

    A matcher on ``kind`` whose value is a rule kind (``negative_surge``, the meaning
    ``kind`` had before Alertmanager labels) is read as ``rule_kind``.
    """

    name: str
    value: str
    regex: bool = False
    equal: bool = True

    def __post_init__(self) -> None:
        if self.name not in LABEL_NAMES:
            raise RuleConfigError("matchers.name", self.name, f"use one of {list(LABEL_NAMES)}")
        if not isinstance(self.value, str):
            raise RuleConfigError("matchers.value", self.value, "must be a string")
        if self.name == "kind" and not self.regex and self.value in _RULE_KINDS:
            object.__setattr__(self, "name", "rule_kind")
        if self.regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise RuleConfigError(
                    "matchers.value", self.value, f"invalid regex: {exc}"
                ) from exc

    @classmethod
    def parse(cls, name: str, op: str, value: str) -> Matcher:
        """``Matcher.parse("series", "!~", "ticker:.*")``.

        Raises:
            RuleConfigError: unknown operator, label or invalid regex.
        """
        if op not in OPERATORS:
            raise RuleConfigError("matchers.op", op, f"use one of {list(OPERATORS)}")
        regex, equal = OPERATORS[op]
        return cls(name, value, regex, equal)

    @property
    def op(self) -> str:
        """The operator: ``=``, ``!=``, ``=~`` or ``!~``."""
        return ("=~" if self.regex else "=") if self.equal else ("!~" if self.regex else "!=")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this matcher (a missing label is ``""``)."""
        actual = labels.get(self.name, "")
        hit = bool(re.fullmatch(self.value, actual)) if self.regex else actual == self.value
        return hit if self.equal else not hit

    def as_dict(self) -> dict[str, Any]:
        """Alertmanager's shape plus ``op`` (and ``regex``, the older field)."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.regex,
            "isEqual": self.equal,
            "op": self.op,
            "regex": self.regex,
        }


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
        """Whether this silence mutes an alert with these (match) labels at ``now``."""
        return self.active(now) and all(m.matches(labels) for m in self.matchers)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        data = asdict(self)
        data["matchers"] = [m.as_dict() for m in self.matchers]
        return data


def is_silenced(labels: Mapping[str, str], silences: Iterable[Silence], now: float) -> bool:
    """Whether any active silence mutes an alert with these stored labels."""
    seen = match_labels(labels)
    return any(s.silences(seen, now) for s in silences)


@dataclass
class AlertGroup:
    """Alerts that share the values of the ``group_by`` labels; sent as one notification."""

    key: str
    labels: dict[str, str]
    alerts: list[Alert] = field(default_factory=list)


def group_alerts(alerts: Iterable[Alert], group_by: list[str]) -> list[AlertGroup]:
    """Group alerts by the values of ``group_by`` labels, keeping first-seen order."""
    for name in group_by:
        if name not in LABEL_NAMES:
            raise RuleConfigError("group_by", name, f"use labels from {list(LABEL_NAMES)}")
    groups: dict[str, AlertGroup] = {}
    for alert in alerts:
        seen = match_labels(alert.labels)
        labels = {name: seen.get(name, "") for name in group_by}
        key = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        groups.setdefault(key, AlertGroup(key=key, labels=labels)).alerts.append(alert)
    return list(groups.values())
