"""The trend stage's pure core: windows + rules for the records of one partition."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from finance_monitor.messages import ScoredRecord
from finance_monitor.rules import Alert, Resolution, RuleEngine, RuleSpec
from finance_monitor.windows import (
    AddResult,
    ClosedWindow,
    WindowAggregator,
    WindowSpec,
    evidence_entry,
)

STATE_FORMAT = 1


@dataclass
class TrendOutput:
    """What processing a batch of records produced."""

    closed: list[ClosedWindow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    resolved: list[Resolution] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    future: int = 0


class TrendProcessor:
    """Per-partition trend state: window aggregates, rule baselines and cooldowns.

    One instance per scored-topic partition; since records are keyed by series, a
    series' windows and baselines live in exactly one partition. ``to_state`` /
    ``load_state`` snapshot everything so the Kafka shell can checkpoint it together
    with the offsets it reflects.
    """

    def __init__(
        self,
        specs: list[WindowSpec],
        rules: list[RuleSpec],
        watermark_delay_s: float = 0.0,
        allowed_lateness_s: float = 0.0,
        max_future_skew_s: float | None = None,
        rule_state_max_series: int = 10_000,
        rule_state_idle_s: float = 7 * 86400.0,
        evidence_size: int = 20,
        resolve_after_windows: int = 1,
    ) -> None:
        self.windows = WindowAggregator(
            specs,
            watermark_delay_s,
            allowed_lateness_s,
            max_future_skew_s,
            evidence_size=evidence_size,
        )
        self.rules = RuleEngine(
            rules, rule_state_max_series, rule_state_idle_s, resolve_after=resolve_after_windows
        )
        self._sizes = {s.name: s.size_s for s in specs}

    def process(self, records: Iterable[ScoredRecord]) -> TrendOutput:
        """Add records, close the windows the watermark passed, and evaluate the rules."""
        out = TrendOutput()
        for record in records:
            evidence = evidence_entry(
                record.id,
                record.title or record.text,
                record.source,
                record.sentiment,
                record.sentiment_scores,
                record.event_time,
            )
            result = self.windows.add(
                record.id, record.series, record.event_time, record.sentiment, evidence
            )
            if result is AddResult.ACCEPTED:
                out.accepted += 1
            elif result is AddResult.DUPLICATE:
                out.duplicates += 1
            elif result is AddResult.FUTURE:
                out.future += 1
            else:
                out.late += 1
        out.closed = self.windows.close_ready()
        for window in out.closed:
            out.alerts.extend(self.rules.evaluate(window))
        if self.windows.max_event_time is not None:
            self.rules.resolve_idle(self.windows.watermark, self._sizes)
        out.resolved = self.rules.take_resolved()
        return out

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot of windows and rule state."""
        return {
            "format": STATE_FORMAT,
            "windows": self.windows.to_state(),
            "rules": self.rules.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot written by ``to_state``."""
        if state.get("format") != STATE_FORMAT:
            return
        self.windows.load_state(state.get("windows", {}))
        self.rules.load_state(state.get("rules", {}))


def default_window_specs(
    window_size_s: float, sliding_size_s: float, sliding_step_s: float
) -> list[WindowSpec]:
    """The two standard shapes: a tumbling window and a sliding window."""
    return [
        WindowSpec("tumbling", window_size_s, window_size_s),
        WindowSpec("sliding", sliding_size_s, min(sliding_step_s, sliding_size_s)),
    ]
