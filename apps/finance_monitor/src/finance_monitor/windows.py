"""Event-time windows (tumbling and sliding) per series, with a watermark and allowed lateness.

Pure logic, no Kafka: ``WindowAggregator.add`` files a record into every window of
every spec that contains its event time; ``close_ready`` returns the windows the
watermark has passed (``end + allowed_lateness <= watermark``). The watermark is the
largest event time seen minus ``watermark_delay_s`` (bounded out-of-orderness). A
record whose windows are all closed already is counted as late and dropped. Records
are de-duplicated by message id inside each open window, so an at-least-once
redelivery does not count twice.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finance_monitor.errors import RuleConfigError

SENTIMENTS = ("negative", "neutral", "positive")
#: Characters of a message's text kept as evidence (the checkpoint stays small).
EVIDENCE_TEXT_CHARS = 280


@dataclass(frozen=True)
class WindowSpec:
    """A window shape. ``step_s == size_s`` is a tumbling window, smaller steps slide."""

    name: str
    size_s: float
    step_s: float

    def __post_init__(self) -> None:
        if not self.name:
            raise RuleConfigError("window.name", self.name, "must not be empty")
        if not (self.size_s > 0 and math.isfinite(self.size_s)):
            raise RuleConfigError("window.size_s", self.size_s, "must be a positive number")
        if not (0 < self.step_s <= self.size_s):
            raise RuleConfigError("window.step_s", self.step_s, "must be in (0, size_s]")

    @property
    def tumbling(self) -> bool:
        """Whether windows do not overlap."""
        return self.step_s == self.size_s

    def starts_containing(self, event_time: float) -> list[float]:
        """Start times of the windows ``[start, start + size)`` that contain ``event_time``."""
        last = math.floor(event_time / self.step_s) * self.step_s
        starts = []
        start = last
        while start > event_time - self.size_s:
            starts.append(round(start, 6))
            start -= self.step_s
        return starts


@dataclass
class ClosedWindow:
    """Aggregates of one finished window of one series."""

    spec: str
    series: str
    start: float
    end: float
    count: int
    negative: int
    neutral: int
    positive: int
    #: The window's most negative messages (see :func:`evidence_entry`), most negative first.
    evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def negative_share(self) -> float:
        """Fraction of the window's messages that are negative."""
        return self.negative / self.count if self.count else 0.0

    @property
    def sentiment_index(self) -> float:
        """(positive - negative) / count, in [-1, 1]."""
        return (self.positive - self.negative) / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict with the derived numbers, for storage and the API."""
        return {
            "spec": self.spec,
            "series": self.series,
            "start": self.start,
            "end": self.end,
            "count": self.count,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "negative_share": round(self.negative_share, 6),
            "sentiment_index": round(self.sentiment_index, 6),
        }


def evidence_entry(
    record_id: str,
    text: str,
    source: str,
    sentiment: str,
    scores: dict[str, float],
    event_time: float,
) -> dict[str, Any]:
    """One message as alert evidence: id, text (cut), source, sentiment with its
    probability, the negative probability (the sort key) and its event time."""
    return {
        "id": record_id,
        "text": text[:EVIDENCE_TEXT_CHARS],
        "source": source,
        "sentiment": sentiment,
        "probability": round(float(scores.get(sentiment, 0.0)), 4),
        "negative": round(float(scores.get("negative", 0.0)), 4),
        "event_time": event_time,
    }


def _keep_most_negative(sample: list[dict[str, Any]], entry: dict[str, Any], cap: int) -> None:
    """Add ``entry`` to a bounded sample that keeps the ``cap`` most negative messages."""
    if cap <= 0:
        return
    if len(sample) < cap:
        sample.append(entry)
        return
    weakest = min(range(len(sample)), key=lambda i: (sample[i]["negative"], sample[i]["id"]))
    if (entry["negative"], entry["id"]) > (sample[weakest]["negative"], sample[weakest]["id"]):
        sample[weakest] = entry


def _ordered(sample: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(sample, key=lambda e: (-e["negative"], e["id"]))


@dataclass
class _OpenWindow:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SENTIMENTS, 0))
    ids: set[str] = field(default_factory=set)
    evidence: list[dict[str, Any]] = field(default_factory=list)


class AddResult(enum.Enum):
    """What happened to a record offered to the aggregator."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    FUTURE = "future"


class WindowAggregator:
    """Open windows of every series of one partition, and the partition's watermark.

    Args:
        specs: window shapes to maintain (e.g. a 60 s tumbling and a 5 min / 1 min sliding).
        watermark_delay_s: how far behind the largest event time the watermark trails.
        allowed_lateness_s: how long after the watermark passes a window's end it stays open.
        max_future_skew_s: the watermark's event time never goes beyond ``clock()`` plus
            this (None: unbounded). One far-future record can then not close every
            window early and make all normal records late.
        clock: wall clock (Unix seconds), injectable for tests.
        evidence_size: per open window, how many of its most negative messages are kept
            (bounded, checkpointed) to become the evidence of an alert on it.
    """

    def __init__(
        self,
        specs: list[WindowSpec],
        watermark_delay_s: float = 0.0,
        allowed_lateness_s: float = 0.0,
        max_future_skew_s: float | None = None,
        clock: Callable[[], float] = time.time,
        evidence_size: int = 20,
    ) -> None:
        if not specs:
            raise RuleConfigError("windows", specs, "need at least one window spec")
        if len({s.name for s in specs}) != len(specs):
            raise RuleConfigError("windows", [s.name for s in specs], "names must be unique")
        if watermark_delay_s < 0:
            raise RuleConfigError("watermark_delay_s", watermark_delay_s, "must be >= 0")
        if allowed_lateness_s < 0:
            raise RuleConfigError("allowed_lateness_s", allowed_lateness_s, "must be >= 0")
        self.specs = {s.name: s for s in specs}
        self.watermark_delay_s = watermark_delay_s
        self.allowed_lateness_s = allowed_lateness_s
        self.max_future_skew_s = max_future_skew_s
        self.clock = clock
        self.evidence_size = evidence_size
        self.max_event_time: float | None = None
        self._open: dict[tuple[str, str, float], _OpenWindow] = {}
        self.late_records = 0
        self.duplicate_records = 0
        self.future_records = 0

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the delay (``-inf`` before any record)."""
        if self.max_event_time is None:
            return -math.inf
        return self.max_event_time - self.watermark_delay_s

    def _clamp(self, event_time: float) -> float:
        if self.max_future_skew_s is None:
            return event_time
        return min(event_time, self.clock() + self.max_future_skew_s)

    def _is_closed(self, spec: WindowSpec, start: float) -> bool:
        return start + spec.size_s + self.allowed_lateness_s <= self.watermark

    def add(
        self,
        record_id: str,
        series: str,
        event_time: float,
        sentiment: str,
        evidence: dict[str, Any] | None = None,
    ) -> AddResult:
        """File one record into its windows (``evidence``: its :func:`evidence_entry`).

        Raises:
            ValueError: ``sentiment`` is not one of negative / neutral / positive.
        """
        if sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment={sentiment!r}: expected one of {SENTIMENTS}")
        if not math.isfinite(event_time) or self._clamp(event_time) < event_time:
            # Beyond wall clock + skew (the Kafka shell dead-letters these first): filing it
            # would open windows far ahead and drag the watermark with it.
            self.future_records += 1
            return AddResult.FUTURE
        accepted = duplicate = False
        for spec in self.specs.values():
            for start in spec.starts_containing(event_time):
                if self._is_closed(spec, start):
                    continue
                window = self._open.setdefault((spec.name, series, start), _OpenWindow())
                if record_id in window.ids:
                    duplicate = True
                    continue
                window.ids.add(record_id)
                window.counts[sentiment] += 1
                if evidence is not None:
                    _keep_most_negative(window.evidence, evidence, self.evidence_size)
                accepted = True
        bounded = self._clamp(event_time)
        if self.max_event_time is None or bounded > self.max_event_time:
            self.max_event_time = bounded
        if accepted:
            return AddResult.ACCEPTED
        if duplicate:
            self.duplicate_records += 1
            return AddResult.DUPLICATE
        self.late_records += 1
        return AddResult.LATE

    def close_ready(self) -> list[ClosedWindow]:
        """Remove and return the windows the watermark has passed, oldest end first."""
        ready = [key for key in self._open if self._is_closed(self.specs[key[0]], key[2])]
        closed = []
        for key in ready:
            name, series, start = key
            window = self._open.pop(key)
            closed.append(
                ClosedWindow(
                    spec=name,
                    series=series,
                    start=start,
                    end=start + self.specs[name].size_s,
                    count=sum(window.counts.values()),
                    **window.counts,
                    evidence=_ordered(window.evidence),
                )
            )
        closed.sort(key=lambda w: (w.end, w.spec, w.series))
        return closed

    def open_window_count(self) -> int:
        """Number of windows still open (all specs, all series)."""
        return len(self._open)

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot, for checkpoints."""
        return {
            "max_event_time": self.max_event_time,
            "late_records": self.late_records,
            "duplicate_records": self.duplicate_records,
            "open": [
                [name, series, start, window.counts, sorted(window.ids), window.evidence]
                for (name, series, start), window in self._open.items()
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot written by ``to_state`` (windows of unknown specs are dropped)."""
        restored = state.get("max_event_time")
        # A checkpoint written before the skew bound existed (or with a wrong clock) must
        # not bring a far-future watermark back: clamp it.
        valid = isinstance(restored, int | float) and math.isfinite(restored)
        self.max_event_time = self._clamp(float(restored)) if valid else None
        self.late_records = int(state.get("late_records", 0))
        self.duplicate_records = int(state.get("duplicate_records", 0))
        self._open = {}
        for entry in state.get("open", []):
            name, series, start, counts, ids = entry[:5]
            # Checkpoints written before evidence existed have none.
            evidence = list(entry[5])[: self.evidence_size] if len(entry) > 5 else []
            if name in self.specs:
                self._open[(name, series, float(start))] = _OpenWindow(
                    counts={s: int(counts.get(s, 0)) for s in SENTIMENTS},
                    ids=set(ids),
                    evidence=evidence,
                )
