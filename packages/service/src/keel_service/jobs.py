"""A periodic background job (retention sweeps and the like) that never kills its thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("keel_service.jobs")


class PeriodicJob:
    """Runs ``fn`` every ``interval_s`` seconds on a daemon thread until :meth:`stop`.

    An exception in ``fn`` is logged and the job runs again at the next interval.
    """

    def __init__(self, name: str, interval_s: float, fn: Callable[[], object]) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s={interval_s!r} must be > 0")
        self.name = name
        self.interval_s = interval_s
        self._fn = fn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def run_once(self) -> None:
        """One run now (also what the loop calls); failures are counted and logged."""
        try:
            self._fn()
            self.runs += 1
        except Exception:
            self.failures += 1
            log.exception(
                "periodic job %s failed; it runs again in %.0f s", self.name, self.interval_s
            )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
