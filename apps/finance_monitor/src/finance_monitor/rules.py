"""Alert rules over closed windows: negative surge, volume spike, sentiment reversal.

Each rule keeps, per series, an EWMA baseline (mean and variance) of the value it
watches, updated with every closed window that has at least ``min_volume`` messages.
A rule fires only after ``min_history`` such windows, and not again for the same
series until ``cooldown_s`` of event time have passed. Everything here is pure and
deterministic, so a replay of the same windows fires the same alerts with the same
keys (``alert_key``), which the store uses to never deliver an alert twice.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from finance_monitor.errors import RuleConfigError
from finance_monitor.messages import series_kind
from finance_monitor.windows import ClosedWindow


class RuleKind(enum.StrEnum):
    """What a rule watches."""

    NEGATIVE_SURGE = "negative_surge"
    VOLUME_SPIKE = "volume_spike"
    SENTIMENT_REVERSAL = "sentiment_reversal"


class SeriesKind(enum.StrEnum):
    """Which series a rule applies to."""

    TOPIC = "topic"
    TICKER = "ticker"
    ANY = "any"


@dataclass
class RuleSpec:
    """One configured rule. Built from YAML or the API; checked in ``__post_init__``.

    Attributes:
        id: unique name, part of the alert key.
        kind: negative_surge | volume_spike | sentiment_reversal.
        window: name of the window spec the rule reads (e.g. ``tumbling``).
        series: topic | ticker | any.
        min_volume: windows with fewer messages are ignored (not evaluated, not learned).
        k: standard deviations above the baseline (surge, spike).
        min_delta: the value must also exceed the baseline by this much (surge: share
            points; spike: messages); guards against a near-zero deviation.
        factor: volume spike: the count must also be ``factor`` x the baseline.
        threshold: reversal: baseline index beyond +threshold and window beyond
            -threshold (or the other way round).
        alpha: EWMA smoothing factor in (0, 1].
        min_history: windows needed before the rule may fire.
        cooldown_s: event-time seconds after a firing during which the rule stays quiet.
        severity: label copied onto alerts (info | warning | critical).
        enabled: disabled rules are kept but not evaluated.
    """

    id: str
    kind: RuleKind
    window: str = "tumbling"
    series: SeriesKind = SeriesKind.TOPIC
    min_volume: int = 10
    k: float = 3.0
    min_delta: float = 0.15
    factor: float = 2.0
    threshold: float = 0.3
    alpha: float = 0.3
    min_history: int = 3
    cooldown_s: float = 300.0
    severity: str = "warning"
    enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str) or len(self.id) > 100:
            raise RuleConfigError("id", self.id, "must be a non-empty string of <= 100 characters")
        try:
            self.kind = RuleKind(self.kind)
        except ValueError:
            raise RuleConfigError(
                "kind", self.kind, f"use one of {[k.value for k in RuleKind]}"
            ) from None
        try:
            self.series = SeriesKind(self.series)
        except ValueError:
            raise RuleConfigError(
                "series", self.series, f"use one of {[k.value for k in SeriesKind]}"
            ) from None
        checks: list[tuple[str, bool, str]] = [
            (
                "min_volume",
                isinstance(self.min_volume, int) and self.min_volume >= 1,
                "must be an integer >= 1",
            ),
            ("k", _number(self.k) and self.k >= 0, "must be a number >= 0"),
            ("min_delta", _number(self.min_delta) and self.min_delta >= 0, "must be a number >= 0"),
            ("factor", _number(self.factor) and self.factor >= 1, "must be a number >= 1"),
            (
                "threshold",
                _number(self.threshold) and 0 <= self.threshold <= 1,
                "must be in [0, 1]",
            ),
            ("alpha", _number(self.alpha) and 0 < self.alpha <= 1, "must be in (0, 1]"),
            (
                "min_history",
                isinstance(self.min_history, int) and self.min_history >= 1,
                "must be an integer >= 1",
            ),
            (
                "cooldown_s",
                _number(self.cooldown_s) and self.cooldown_s >= 0,
                "must be a number >= 0",
            ),
            (
                "severity",
                self.severity in ("info", "warning", "critical"),
                "use info, warning or critical",
            ),
            (
                "window",
                isinstance(self.window, str) and bool(self.window),
                "must name a window spec",
            ),
            ("enabled", isinstance(self.enabled, bool), "must be true or false"),
        ]
        for name, ok, reason in checks:
            if not ok:
                raise RuleConfigError(name, getattr(self, name), reason)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleSpec:
        """Build from a plain mapping (YAML / JSON).

        Raises:
            RuleConfigError: unknown field, missing id/kind, or a bad value.
        """
        if not isinstance(data, dict):
            raise RuleConfigError("rule", data, "must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RuleConfigError(
                unknown[0], data[unknown[0]], f"unknown rule field; known: {sorted(known)}"
            )
        for required in ("id", "kind"):
            if required not in data:
                raise RuleConfigError(required, None, "required field is missing")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["series"] = self.series.value
        return data

    def applies_to(self, series: str) -> bool:
        """Whether the rule watches this series key."""
        return self.series is SeriesKind.ANY or series_kind(series) == self.series.value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_rules_yaml(text: str, source: str = "rules.yaml") -> list[RuleSpec]:
    """Parse a YAML document ``rules: [ {id: ..., kind: ...}, ... ]``.

    Raises:
        RuleConfigError: invalid YAML or rule; the field names the file and rule index.
    """
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RuleConfigError(source, None, f"invalid YAML: {exc}") from exc
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RuleConfigError(f"{source}: rules", items, "must be a list of rules")
    rules = []
    for index, item in enumerate(items):
        try:
            rules.append(RuleSpec.from_dict(item))
        except RuleConfigError as exc:
            raise RuleConfigError(
                f"{source}: rules[{index}].{exc.field}", exc.value, exc.reason
            ) from exc
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RuleConfigError(f"{source}: rules", ids, "rule ids must be unique")
    return rules


def load_rules_file(path: Path | None) -> list[RuleSpec]:
    """Rules from a YAML file, or the bundled defaults when ``path`` is None."""
    if path is None:
        from importlib import resources

        text = resources.files("finance_monitor").joinpath("demo_data/rules.yaml").read_text()
        return load_rules_yaml(text, "demo_data/rules.yaml")
    return load_rules_yaml(Path(path).read_text(), str(path))


@dataclass
class Ewma:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, value: float) -> None:
        """Fold one observation into the baseline."""
        if self.n == 0:
            self.mean, self.var = value, 0.0
        else:
            diff = value - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1 - self.alpha) * (self.var + diff * incr)
        self.n += 1

    @property
    def std(self) -> float:
        """Standard deviation of the baseline."""
        return math.sqrt(max(self.var, 0.0))


@dataclass
class SeriesRuleState:
    """What one rule remembers about one series.

    ``active_key`` is the key of the alert that is firing for this (rule, series), if
    any, ``active_threshold`` the threshold that fired it, and ``quiet`` counts the
    windows since its value was last beyond that threshold.
    """

    baseline: Ewma
    last_fired_end: float | None = None
    last_seen_end: float = 0.0
    active_key: str | None = None
    quiet: int = 0
    active_threshold: float = 0.0


@dataclass(frozen=True)
class Resolution:
    """A firing alert whose condition cleared: resolved at event time ``at``."""

    key: str
    rule_id: str
    series: str
    at: float


@dataclass(frozen=True)
class Alert:
    """A fired rule. ``key`` is stable: same rule, series and window -> same key."""

    key: str
    rule_id: str
    kind: str
    series: str
    severity: str
    window_spec: str
    window_start: float
    window_end: float
    value: float
    baseline: float
    threshold: float
    volume: int
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    #: The messages behind the alert (most negative first), see ``windows.Evidence``.
    evidence: list[dict[str, Any]] = field(default_factory=list, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping."""
        return asdict(self)


def alert_key(rule_id: str, series: str, window_spec: str, window_start: float) -> str:
    """Deterministic id of an alert: a replay of the same window yields the same key."""
    raw = f"{rule_id}|{series}|{window_spec}|{window_start:.3f}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _evaluate(
    rule: RuleSpec, state: SeriesRuleState, window: ClosedWindow
) -> tuple[float, float, bool]:
    """Return (value, threshold, whether the condition holds) and learn the window."""
    base = state.baseline
    ready = base.n >= rule.min_history
    if rule.kind is RuleKind.NEGATIVE_SURGE:
        value = window.negative_share
        # A share over n messages is noisy by sqrt(p(1-p)/n) even when the baseline's
        # EWMA spread is small: use the larger, so quiet series do not fire on chance.
        sampling_std = math.sqrt(max(base.mean * (1 - base.mean), 0.0) / window.count)
        threshold = base.mean + max(rule.k * max(base.std, sampling_std), rule.min_delta)
        hit = ready and value > threshold
    elif rule.kind is RuleKind.VOLUME_SPIKE:
        value = float(window.count)
        threshold = max(base.mean * rule.factor, base.mean + max(rule.k * base.std, rule.min_delta))
        hit = ready and value > threshold
    else:
        value = window.sentiment_index
        threshold = -rule.threshold if base.mean >= rule.threshold else rule.threshold
        hit = ready and (
            (base.mean >= rule.threshold and value <= -rule.threshold)
            or (base.mean <= -rule.threshold and value >= rule.threshold)
        )
    base.update(value)
    return value, threshold, hit


def _still_holds(rule: RuleSpec, fired_threshold: float, value: float) -> bool:
    """Whether a window's value is still beyond the threshold that fired the alert.

    A firing alert is judged against that fixed threshold, not the live one: the
    baseline keeps learning, and a long surge would otherwise raise it until the alert
    resolved while the surge goes on.
    """
    if rule.kind is RuleKind.SENTIMENT_REVERSAL:
        return value <= fired_threshold if fired_threshold < 0 else value >= fired_threshold
    return value > fired_threshold


def _summary(rule: RuleSpec, window: ClosedWindow, value: float, baseline: float) -> str:
    name = window.series.split(":", 1)[1]
    if rule.kind is RuleKind.NEGATIVE_SURGE:
        return (
            f"Negative sentiment surge on {name}: {value:.0%} negative "
            f"(baseline {baseline:.0%}) over {window.count} messages"
        )
    if rule.kind is RuleKind.VOLUME_SPIKE:
        return f"Volume spike on {name}: {int(value)} messages (baseline {baseline:.1f})"
    direction = "negative" if value < 0 else "positive"
    return f"Sentiment reversal on {name}: index {value:+.2f} turned {direction} (baseline {baseline:+.2f})"


class RuleEngine:
    """Evaluates a set of rules over closed windows and remembers per-series state.

    The state is bounded: a (rule, series) entry not updated for ``idle_s`` of event
    time is evicted, and beyond ``max_series`` entries the least recently updated go
    (an evicted series simply relearns its baseline, ``min_history`` windows).

    Alert lifecycle: an alert is *firing* from the window that fired it until
    ``resolve_after`` consecutive windows of its rule and series are no longer beyond
    the threshold that fired it (a window below ``min_volume`` counts as such, and so
    does a window that never came: see :meth:`resolve_idle`). While it fires, the rule raises
    no new alert for the series; the resolutions are collected in ``resolved`` for the
    caller to take.
    """

    def __init__(
        self,
        rules: list[RuleSpec],
        max_series: int = 10_000,
        idle_s: float = 7 * 86400.0,
        resolve_after: int = 1,
    ) -> None:
        self.rules: dict[str, RuleSpec] = {}
        self.states: dict[tuple[str, str], SeriesRuleState] = {}
        self.max_series = max_series
        self.idle_s = idle_s
        self.resolve_after = max(1, resolve_after)
        self.resolved: list[Resolution] = []
        self.evicted = 0
        self._latest_end = -math.inf
        self._since_sweep = 0
        self.set_rules(rules)

    def _evict(self) -> None:
        """Drop idle entries, then the least recently updated beyond ``max_series``."""
        horizon = self._latest_end - self.idle_s
        idle = [key for key, st in self.states.items() if st.last_seen_end < horizon]
        for key in idle:
            self._drop(key)
        excess = len(self.states) - self.max_series
        if excess > 0:
            oldest = sorted(self.states, key=lambda k: self.states[k].last_seen_end)[:excess]
            for key in oldest:
                self._drop(key)
        self.evicted += len(idle) + max(excess, 0)

    def _drop(self, key: tuple[str, str], at: float | None = None) -> None:
        """Forget one (rule, series) entry; its firing alert (if any) is resolved."""
        state = self.states.pop(key)
        if state.active_key is not None:
            when = state.last_seen_end if at is None else at
            self.resolved.append(Resolution(state.active_key, key[0], key[1], when))

    def _quiet(self, key: tuple[str, str], state: SeriesRuleState, at: float) -> None:
        """A window of this (rule, series) did not meet the condition."""
        if state.active_key is None:
            return
        state.quiet += 1
        if state.quiet >= self.resolve_after:
            self.resolved.append(Resolution(state.active_key, key[0], key[1], at))
            state.active_key, state.quiet = None, 0

    def take_resolved(self) -> list[Resolution]:
        """The resolutions collected since the last call (and forget them)."""
        out, self.resolved = self.resolved, []
        return out

    def resolve_idle(self, watermark: float, window_sizes: dict[str, float]) -> None:
        """Resolve firing alerts whose series produced no window for ``resolve_after``
        window lengths of event time (the series went quiet: no window, no condition)."""
        for key, state in list(self.states.items()):
            rule = self.rules.get(key[0])
            size = window_sizes.get(rule.window) if rule is not None else None
            if state.active_key is None or size is None:
                continue
            if watermark - state.last_seen_end >= (self.resolve_after + 1) * size:
                self.resolved.append(Resolution(state.active_key, key[0], key[1], watermark))
                state.active_key, state.quiet = None, 0

    def set_rules(self, rules: list[RuleSpec]) -> None:
        """Replace the rule set, keeping the learned state of rules whose logic is unchanged.

        The firing alerts of dropped rules (or of rules whose logic changed) are resolved.
        """
        old = self.rules
        self.rules = {r.id: r for r in rules}
        keep = {
            rid
            for rid, rule in self.rules.items()
            if rid in old
            and (old[rid].kind, old[rid].window, old[rid].alpha)
            == (rule.kind, rule.window, rule.alpha)
        }
        for key in [k for k in self.states if k[0] not in keep]:
            self._drop(key)

    def evaluate(self, window: ClosedWindow) -> list[Alert]:
        """Run every enabled rule that watches this window's spec and series."""
        alerts = []
        for rule in self.rules.values():
            if not rule.enabled or rule.window != window.spec or not rule.applies_to(window.series):
                continue
            if window.count < rule.min_volume:
                known = self.states.get((rule.id, window.series))
                if known is not None:  # too few messages: the condition does not hold
                    known.last_seen_end = max(known.last_seen_end, window.end)
                    self._quiet((rule.id, window.series), known, window.end)
                continue
            state = self.states.setdefault(
                (rule.id, window.series), SeriesRuleState(Ewma(rule.alpha))
            )
            state.last_seen_end = max(state.last_seen_end, window.end)
            self._latest_end = max(self._latest_end, window.end)
            self._since_sweep += 1
            # Sweep every 1,000 updates, or at once past the cap: bounded and cheap.
            if len(self.states) > self.max_series or self._since_sweep >= 1000:
                self._since_sweep = 0
                self._evict()
                state = self.states.setdefault((rule.id, window.series), state)
            baseline = state.baseline.mean
            value, threshold, hit = _evaluate(rule, state, window)
            if state.active_key is not None:  # firing: the same alert goes on, or clears
                if _still_holds(rule, state.active_threshold, value):
                    state.quiet = 0
                else:
                    self._quiet((rule.id, window.series), state, window.end)
                continue
            if not hit:
                continue
            cooling = (
                state.last_fired_end is not None
                and window.end - state.last_fired_end < rule.cooldown_s
            )
            if cooling:
                continue
            state.last_fired_end = window.end
            key = alert_key(rule.id, window.series, window.spec, window.start)
            state.active_key, state.quiet, state.active_threshold = key, 0, threshold
            alerts.append(
                Alert(
                    key=key,
                    rule_id=rule.id,
                    kind=rule.kind.value,
                    series=window.series,
                    severity=rule.severity,
                    window_spec=window.spec,
                    window_start=window.start,
                    window_end=window.end,
                    value=round(value, 6),
                    baseline=round(baseline, 6),
                    threshold=round(threshold, 6),
                    volume=window.count,
                    summary=_summary(rule, window, value, baseline),
                    labels={
                        "rule": rule.id,
                        "kind": rule.kind.value,
                        "series": window.series,
                        "series_kind": series_kind(window.series),
                        "severity": rule.severity,
                    },
                    evidence=list(window.evidence),
                )
            )
        return alerts

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot of every (rule, series) baseline and cooldown."""
        return {
            "states": [
                [
                    rid,
                    series,
                    st.baseline.mean,
                    st.baseline.var,
                    st.baseline.n,
                    st.last_fired_end,
                    st.last_seen_end,
                    st.active_key,
                    st.quiet,
                    st.active_threshold,
                ]
                for (rid, series), st in self.states.items()
            ],
            # Resolutions not yet stored (normally empty: the caller takes them each batch).
            "resolved": [[r.key, r.rule_id, r.series, r.at] for r in self.resolved],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot; entries of rules no longer configured are dropped."""
        self.states = {}
        for entry in state.get("states", []):
            rid, series, mean, var, n, last = entry[:6]
            # Checkpoints before eviction existed have no last_seen_end: use the last firing.
            seen = float(entry[6]) if len(entry) > 6 else float(last or 0.0)
            # Checkpoints before the alert lifecycle have no active alert.
            active = entry[7] if len(entry) > 7 and isinstance(entry[7], str) else None
            quiet = int(entry[8]) if len(entry) > 8 else 0
            fired_at = float(entry[9]) if len(entry) > 9 else 0.0
            if rid in self.rules:
                base = Ewma(self.rules[rid].alpha, float(mean), float(var), int(n))
                self.states[(rid, series)] = SeriesRuleState(
                    base, last, seen, active, quiet, fired_at
                )
                self._latest_end = max(self._latest_end, seen)
        self.resolved = [
            Resolution(str(k), str(r), str(s), float(at))
            for k, r, s, at in state.get("resolved", [])
        ]
        if len(self.states) > self.max_series:
            self._evict()
