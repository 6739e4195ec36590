"""A thread-safe LRU cache of per-text embedding vectors."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class EmbeddingCache:
    """Least-recently-used map ``text -> embedding`` with a fixed number of entries.

    Args:
        max_entries: how many texts to keep; 0 disables the cache.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries={max_entries}: must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        """Whether ``text`` is cached (a peek: neither the counters nor the order change)."""
        with self._lock:
            return text in self._entries

    def get(self, text: str) -> np.ndarray | None:
        """Return the cached vector of ``text`` (and mark it recently used), or None."""
        with self._lock:
            vector = self._entries.get(text)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(text)
            self.hits += 1
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        """Store ``vector`` for ``text``, evicting the least recently used entry if full."""
        if not self.enabled:
            return
        with self._lock:
            self._entries[text] = vector
            self._entries.move_to_end(text)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
