"""Per-item popularity, trending and freshness signals from interaction logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86_400.0


_KEY_SCALE = 1e10  # item_row * scale + timestamp: one sortable float64 key per event


@dataclass
class ItemStats:
    """Positive-interaction counts per catalogue row, and their timestamps.

    Attributes:
        counts: ``[n_items]`` positives per item.
        keys: sorted ``item_row * 1e10 + timestamp`` of every positive, so "positives of
            item r between t0 and t1" is two ``searchsorted`` calls, vectorised over items.
        reference_time: Unix seconds of the newest logged interaction.
        window_days: the trending window.
    """

    counts: np.ndarray
    keys: np.ndarray
    reference_time: float
    window_days: float = 14.0

    @classmethod
    def from_interactions(
        cls,
        item_rows: Sequence[int],
        timestamps: Sequence[float],
        n_items: int,
        window_days: float = 14.0,
        reference_time: float | None = None,
    ) -> ItemStats:
        """Count positives per item; ``reference_time`` defaults to the newest timestamp."""
        items = np.asarray(item_rows, dtype=np.int64)
        ts = np.asarray(timestamps, dtype=np.float64)
        if reference_time is None:
            reference_time = float(ts.max()) if ts.size else 0.0
        counts = np.bincount(items, minlength=n_items).astype(np.float64)[:n_items]
        keys = np.sort(items * _KEY_SCALE + ts)
        return cls(counts, keys, reference_time, window_days)

    @classmethod
    def empty(cls, n_items: int, reference_time: float = 0.0) -> ItemStats:
        """Stats with no interactions."""
        return cls(np.zeros(n_items), np.zeros(0), reference_time)

    def popularity(self, rows: np.ndarray) -> np.ndarray:
        """``log1p(count) / log1p(max count)`` in [0, 1]; unknown rows (-1) give 0."""
        counts = self.counts  # one read: a writer may swap in a new array meanwhile
        return _scaled(counts, rows, float(counts.max()) if counts.size else 0.0)

    def window_counts(self, rows: np.ndarray, as_of: float) -> np.ndarray:
        """Positives of each row in the ``window_days`` before ``as_of`` (unknown rows: 0)."""
        ok = rows >= 0
        keys = self.keys  # one read: both bounds must come from the same sorted array
        base = np.where(ok, rows, 0).astype(np.float64) * _KEY_SCALE
        hi = np.searchsorted(keys, base + as_of, side="right")
        lo = np.searchsorted(keys, base + as_of - self.window_days * SECONDS_PER_DAY, side="right")
        return np.where(ok, hi - lo, 0).astype(np.float64)

    def trending(self, rows: np.ndarray, as_of: float | None = None) -> np.ndarray:
        """Positives in the trending window before ``as_of`` (default: the end of the log),
        log-scaled like :meth:`popularity`."""
        when = self.reference_time if as_of is None else as_of
        counts = self.window_counts(rows, when)
        totals = self.counts
        top = float(totals.max()) if totals.size else 0.0
        out = np.zeros(len(rows))
        if top > 0:
            # a count read just before a writer's swap can trail the window's: cap at 1
            out = np.minimum(np.log1p(counts) / np.log1p(top), 1.0)
        return out

    def record(self, row: int, timestamp: float, max_reference: float | None = None) -> None:
        """Count one live positive interaction (e.g. a click event).

        Args:
            row: signal row of the item.
            timestamp: when it happened (Unix seconds).
            max_reference: ceiling for the reference time (wall clock + allowed skew), so
                one mis-stamped event can never age every item at once.
        """
        self.record_many(np.array([row]), np.array([timestamp]), max_reference)

    def record_many(
        self, rows: np.ndarray, timestamps: np.ndarray, max_reference: float | None = None
    ) -> None:
        """Count a batch of positives in one pass (one sort, no per-event array copy).

        The new arrays are built aside and then swapped in, so concurrent readers see the
        old or the new counts, never a half-written array. Callers serialise writers.

        Args:
            rows: ``[n]`` signal rows.
            timestamps: ``[n]`` Unix seconds, each below ``1e10`` (the key scale).
            max_reference: ceiling for the reference time (None = no ceiling).
        """
        rows = np.asarray(rows, dtype=np.int64)
        ts = np.asarray(timestamps, dtype=np.float64)
        if rows.size == 0:
            return
        counts = self.counts
        if int(rows.max()) >= len(counts):
            counts = np.concatenate([counts, np.zeros(int(rows.max()) + 1 - len(counts))])
        else:
            counts = counts.copy()
        np.add.at(counts, rows, 1.0)
        keys = np.sort(np.concatenate([self.keys, rows * _KEY_SCALE + ts]))
        newest = float(ts.max())
        if max_reference is not None:
            newest = min(newest, max_reference)
        self.counts = counts
        self.keys = keys
        self.reference_time = max(self.reference_time, newest)

    def clamp_reference(self, max_reference: float) -> None:
        """Pull the reference time back to ``max_reference`` if it is ahead of it (e.g. a
        data set whose newest row is stamped in the future)."""
        self.reference_time = min(self.reference_time, max_reference)

    def resize(self, n_items: int) -> None:
        """Grow the count array for new catalogue rows."""
        if n_items > len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(n_items - len(self.counts))])


def _scaled(values: np.ndarray, rows: np.ndarray, top: float) -> np.ndarray:
    out = np.zeros(len(rows), dtype=np.float64)
    ok = (rows >= 0) & (rows < len(values))
    if top > 0 and ok.any():
        out[ok] = np.log1p(values[rows[ok]]) / np.log1p(top)
    return out


def freshness(created_at: np.ndarray, reference_time: float, half_life_days: float) -> np.ndarray:
    """``0.5 ** (age / half_life)`` of items created at ``created_at`` (NaN = unknown -> 0)."""
    age = np.clip((reference_time - created_at) / SECONDS_PER_DAY, 0.0, None)
    out = 0.5 ** (age / half_life_days)
    return np.where(np.isnan(created_at), 0.0, out)
