"""Alerts in Prometheus Alertmanager's formats (pure logic).

- :func:`am_labels`: the label set an alert carries in Alertmanager (``alertname``,
  ``rule``, ``series``, ``kind`` = topic | ticker, ``severity``), also what Keel's
  silences match.
- :func:`fingerprint`: Alertmanager's fingerprint of a label set (FNV-1a 64 over the
  sorted names and values, as ``prometheus/common/model`` computes it).
- :func:`am_alert`: one alert for ``POST /api/v2/alerts``; :func:`webhook_payload`: a
  notification in Alertmanager's webhook format, version 4.

Times are RFC 3339 in UTC. ``startsAt`` is when Keel stored the alert and ``endsAt``
when its condition cleared (wall clock: event times of a replay can be days old);
the window's event times are in the annotations.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

#: ``endsAt`` of a firing alert in webhook notifications (Alertmanager's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
#: Headlines of an alert copied into its ``headlines`` annotation.
ANNOTATION_HEADLINES = 3

_ALERTNAMES = {
    "negative_surge": "NegativeSentimentSurge",
    "volume_spike": "VolumeSpike",
    "sentiment_reversal": "SentimentReversal",
}
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def rfc3339(epoch_s: float) -> str:
    """``1700000000.5`` -> ``2023-11-14T22:13:20.500Z``."""
    when = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertname(rule_kind: str) -> str:
    """The ``alertname`` of a rule kind (``negative_surge`` -> ``NegativeSentimentSurge``)."""
    return _ALERTNAMES.get(rule_kind, "".join(p.title() for p in rule_kind.split("_")))


def am_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Alertmanager labels from a stored alert's labels (``rule``, ``kind`` = rule kind,
    ``series``, ``series_kind``, ``severity``)."""
    series = labels.get("series", "")
    return {
        "alertname": alertname(labels.get("kind", "")),
        "rule": labels.get("rule", ""),
        "series": series,
        "kind": labels.get("series_kind") or series.split(":", 1)[0],
        "severity": labels.get("severity", ""),
    }


def match_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """What silences and grouping see: the Alertmanager labels, plus ``series_kind`` and
    ``rule_kind`` (the rule's kind, which was ``kind`` before Alertmanager labels)."""
    out = am_labels(labels)
    out["series_kind"] = out["kind"]
    out["rule_kind"] = labels.get("kind", "")
    return out


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: 16 hex digits."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def dashboard_url(base_url: str, key: str) -> str:
    """The dashboard's drill-down of one alert."""
    return f"{base_url.rstrip('/')}/#alert={quote(key)}"


def generator_url(base_url: str, key: str) -> str:
    """Where the alert comes from: its JSON in Keel's API (with its evidence)."""
    return f"{base_url.rstrip('/')}/api/alerts/{quote(key)}"


def annotations(alert: Mapping[str, Any], base_url: str) -> dict[str, str]:
    """Summary, description, dashboard URL, top headlines and the numbers (as strings)."""
    evidence = alert.get("evidence") or []
    headlines = [str(e.get("text", "")) for e in evidence[:ANNOTATION_HEADLINES]]
    description = (
        f"Rule {alert['rule_id']} ({alert['kind']}) on {alert['series']}: value "
        f"{alert['value']:.3f} against baseline {alert['baseline']:.3f} (threshold "
        f"{alert['threshold']:.3f}) over {alert['volume']} messages in the "
        f"{alert['window_spec']} window {rfc3339(alert['window_start'])} - "
        f"{rfc3339(alert['window_end'])} (event time)."
    )
    out = {
        "summary": str(alert["summary"]),
        "description": description,
        "dashboard": dashboard_url(base_url, alert["key"]),
        "headlines": "\n".join(headlines),
        "alert_key": str(alert["key"]),
        "value": f"{alert['value']:.6g}",
        "baseline": f"{alert['baseline']:.6g}",
        "threshold": f"{alert['threshold']:.6g}",
        "volume": str(alert["volume"]),
        "window_start": rfc3339(alert["window_start"]),
        "window_end": rfc3339(alert["window_end"]),
    }
    return out if headlines else {k: v for k, v in out.items() if k != "headlines"}


def am_alert(
    alert: Mapping[str, Any], base_url: str, now: float, firing_for_s: float
) -> dict[str, Any]:
    """One alert of a ``POST /api/v2/alerts`` body, from a stored alert row.

    A firing alert gets ``endsAt = now + firing_for_s`` (re-sent before then while it
    fires; if Keel stops sending, Alertmanager resolves it by itself at that time);
    a resolved one gets its resolution time.
    """
    started = float(alert.get("created_at") or now)
    resolved = alert.get("resolved_at")
    ends = float(resolved) if resolved is not None else now + firing_for_s
    return {
        "labels": am_labels(alert["labels"]),
        "annotations": annotations(alert, base_url),
        "startsAt": rfc3339(started),
        "endsAt": rfc3339(max(ends, started + 0.001)),
        "generatorURL": generator_url(base_url, alert["key"]),
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def group_key(group_labels: Mapping[str, str], receiver: str = "keel") -> str:
    """Alertmanager-style group key: ``{}/{route}:{label="value", ...}``."""
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return f"{{}}/{{receiver={json.dumps(receiver)}}}:{{{inner}}}"


def webhook_payload(
    alerts: Iterable[Mapping[str, Any]],
    group_by: Iterable[str],
    status: str,
    base_url: str,
    receiver: str = "keel",
) -> dict[str, Any]:
    """A notification in Alertmanager's webhook format (version 4) for alerts of one group.

    Args:
        alerts: alert rows (``Alert.as_dict()`` or store rows; ``created_at`` /
            ``resolved_at`` when known).
        group_by: labels that define the group (as in Alertmanager's route).
        status: ``firing`` or ``resolved`` (every alert of the notification has it).
        base_url: the dashboard's public URL (``externalURL``, links).
        receiver: the receiver's name in the payload.
    """
    items = []
    labels_list = []
    annotations_list = []
    for alert in alerts:
        labels = am_labels(alert["labels"])
        notes = annotations(alert, base_url)
        started = float(alert.get("created_at") or alert["window_end"])
        resolved_at = alert.get("resolved_at")
        ends = ZERO_TIME
        if status == "resolved":
            ends = rfc3339(max(float(resolved_at or started), started + 0.001))
        items.append(
            {
                "status": status,
                "labels": labels,
                "annotations": notes,
                "startsAt": rfc3339(started),
                "endsAt": ends,
                "generatorURL": generator_url(base_url, alert["key"]),
                "fingerprint": fingerprint(labels),
            }
        )
        labels_list.append(labels)
        annotations_list.append(notes)
    common = _common(labels_list)
    group_labels = {name: common.get(name, "") for name in group_by}
    return {
        "version": "4",
        "groupKey": group_key(group_labels, receiver),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": _common(annotations_list),
        "externalURL": base_url.rstrip("/"),
        "alerts": items,
    }
