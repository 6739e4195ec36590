"""Keeps the streaming stages running: restart with backoff, count restarts, report health.

A stage that fails is restarted after an exponential, jittered delay; the delay resets
once a run has lasted ``healthy_run_s``. A stage restarted ``degraded_restarts`` times
within ``degraded_window_s`` makes readiness report ``degraded`` (HTTP 503), naming the
stage and the error class only (never exception text, which may quote URLs or data).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finance_monitor import metrics

log = logging.getLogger(__name__)


@dataclass
class StageStatus:
    """Restart history of one stage."""

    restarts_total: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    last_error: str | None = None
    running: bool = False


class StageSupervisor:
    """Runs stage loops with restart-on-failure and keeps their restart history.

    Args:
        backoff_s: first restart delay; doubles per consecutive failure.
        backoff_max_s: largest restart delay.
        degraded_restarts: restarts within ``degraded_window_s`` that mark a stage degraded.
        degraded_window_s: the look-back window of that count.
        healthy_run_s: a run this long resets the backoff.
        clock: monotonic clock (injectable for tests). rng: jitter source in [0, 1).
    """

    def __init__(
        self,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        degraded_restarts: int = 3,
        degraded_window_s: float = 300.0,
        healthy_run_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.degraded_restarts = degraded_restarts
        self.degraded_window_s = degraded_window_s
        self.healthy_run_s = healthy_run_s
        self.clock = clock
        self.rng = rng
        self.stages: dict[str, StageStatus] = {}
        self._lock = threading.Lock()

    def delay(self, consecutive_failures: int) -> float:
        """Restart delay after ``consecutive_failures`` (>= 1) failures in a row, with jitter."""
        base = min(self.backoff_s * 2 ** (consecutive_failures - 1), self.backoff_max_s)
        return base * (0.5 + 0.5 * self.rng())

    def record_failure(self, name: str, exc: BaseException) -> None:
        """Count one restart of ``name`` (metric + history)."""
        with self._lock:
            status = self.stages.setdefault(name, StageStatus())
            status.restarts_total += 1
            status.recent.append(self.clock())
            status.last_error = type(exc).__name__
        metrics.WORKER_RESTARTS.labels(name).inc()

    def run(self, target: Callable[[], None], name: str, stop: threading.Event) -> None:
        """Run ``target`` until it returns or ``stop`` is set, restarting it when it raises."""
        failures = 0
        status = self.stages.setdefault(name, StageStatus())
        while not stop.is_set():
            started = self.clock()
            status.running = True
            try:
                target()
                return
            except Exception as exc:  # the supervisor's job is to survive it
                if self.clock() - started >= self.healthy_run_s:
                    failures = 0
                failures += 1
                self.record_failure(name, exc)
                wait = self.delay(failures)
                log.exception(
                    "%s stopped with %s; restart %d in %.1fs",
                    name,
                    type(exc).__name__,
                    status.restarts_total,
                    wait,
                )
                stop.wait(wait)
            finally:
                status.running = False

    def degraded_reasons(self) -> list[str]:
        """One line per stage restarted too often recently (empty when healthy)."""
        now = self.clock()
        reasons = []
        with self._lock:
            for name, status in sorted(self.stages.items()):
                recent = sum(1 for t in status.recent if now - t <= self.degraded_window_s)
                if recent >= self.degraded_restarts:
                    reasons.append(
                        f"{name} restarted {recent} times in the last "
                        f"{self.degraded_window_s:.0f} s (last error: {status.last_error})"
                    )
        return reasons

    def snapshot(self) -> dict[str, Any]:
        """Restart counts and last error class of each stage."""
        with self._lock:
            return {
                name: {"restarts": s.restarts_total, "last_error": s.last_error}
                for name, s in sorted(self.stages.items())
            }
