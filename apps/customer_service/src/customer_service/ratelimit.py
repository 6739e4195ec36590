"""Per-client token-bucket rate limiting."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """Allows ``per_minute`` requests per client on average with bursts of ``burst``.

    Args:
        per_minute: refill rate of each client's bucket.
        burst: bucket size (requests a client may send at once).
        max_clients: buckets kept; the least recently seen client is forgotten first.
        clock: time source (tests pass a fake one).
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError(f"per_minute={per_minute!r}, burst={burst!r}: both must be >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token for ``client``; returns 0 if allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait
