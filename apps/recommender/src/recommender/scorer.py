"""Builds feature batches from the catalogue and the learned signals (shared by the API,
the training pipeline and the evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.blend import BlendModel
from recommender.catalogue import CatalogueSnapshot
from recommender.cooccurrence import ItemSimilarity
from recommender.features import (
    CandidateBatch,
    FeatureMatrix,
    HistoryBatch,
    compute_features,
    recency_weights,
)
from recommender.stats import ItemStats, freshness


@dataclass
class Signals:
    """Everything learned from interaction logs besides the encoder.

    Signals have their own row numbering (``item_index``), independent of catalogue rows, so
    admin changes to the catalogue never misalign them.

    Attributes:
        item_index: item id -> signal row.
        stats: popularity and trending counts per signal row.
        similarity: item-item co-occurrence similarity over signal rows.
        blend: the learned blend.
        history_half_life: recency weighting of history positions.
        freshness_half_life_days: decay of item freshness.
    """

    item_index: dict[str, int]
    stats: ItemStats
    similarity: ItemSimilarity
    blend: BlendModel
    history_half_life: float = 10.0
    freshness_half_life_days: float = 365.0

    def rows_of(self, item_ids: list[str]) -> np.ndarray:
        """Signal rows of ``item_ids`` (-1 for items without signals)."""
        get = self.item_index.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def ensure_row(self, item_id: str) -> int:
        """Signal row of ``item_id``, adding an empty one for a new item.

        The similarity matrix is not touched: lookups treat rows past its end as items
        without neighbours, so a new item costs O(1) here instead of an O(N) rebuild. The
        counts grow before the id is published, so a concurrent reader that finds the id
        always finds its count. Callers serialise writers.
        """
        row = self.item_index.get(item_id)
        if row is None:
            row = len(self.item_index)
            self.stats.resize(row + 1)
            self.item_index[item_id] = row
        return row

    def by_popularity(self) -> list[str]:
        """Every item id with signals, by descending positive count (ties: row order)."""
        index = dict(self.item_index)  # a private copy: writers may add ids meanwhile
        counts = self.stats.counts
        ids = list(index)
        if not ids or not len(counts):
            return ids
        rows = np.fromiter(index.values(), dtype=np.int64, count=len(index))
        score = np.where(rows < len(counts), counts[np.minimum(rows, len(counts) - 1)], 0.0)
        return [ids[k] for k in np.argsort(-score, kind="stable")]


def history_from_catalogue(
    snapshot: CatalogueSnapshot, signals: Signals, item_ids: list[str]
) -> HistoryBatch:
    """History batch of catalogue items (ids not in the catalogue are skipped)."""
    rows = snapshot.row_of(item_ids)
    ok = rows >= 0
    rows = rows[ok]
    ids = [i for i, good in zip(item_ids, ok, strict=True) if good]
    return HistoryBatch(
        ids=ids,
        vectors=snapshot.vectors[rows],
        weights=recency_weights(len(ids), signals.history_half_life),
        rows=signals.rows_of(ids),
        categories=[snapshot.categories[r] for r in rows],
        titles=[snapshot.items[r].title for r in rows],
    )


def candidates_from_catalogue(
    snapshot: CatalogueSnapshot, signals: Signals, item_ids: list[str], as_of: float | None = None
) -> CandidateBatch:
    """Candidate batch of catalogue items (all ids must be in the catalogue)."""
    rows = snapshot.row_of(item_ids)
    return candidates_from_rows(
        snapshot, signals, item_ids, rows, snapshot.vectors[rows], as_of=as_of
    )


def candidates_from_rows(
    snapshot: CatalogueSnapshot,
    signals: Signals,
    item_ids: list[str],
    rows: np.ndarray,
    vectors: np.ndarray,
    categories: list[frozenset[str]] | None = None,
    titles: list[str] | None = None,
    created_at: np.ndarray | None = None,
    numeric: dict[str, np.ndarray] | None = None,
    as_of: float | None = None,
) -> CandidateBatch:
    """Candidate batch from catalogue rows (-1 = not catalogued) plus caller-given data.

    ``as_of`` is the moment the ranking is for (trending window and freshness are measured
    back from it); None means the end of the interaction log.
    """
    when = signals.stats.reference_time if as_of is None else as_of
    signal_rows = signals.rows_of(item_ids)
    in_cat = rows >= 0
    if categories is None:
        categories = [snapshot.categories[r] if r >= 0 else frozenset() for r in rows]
    if titles is None:
        titles = [
            snapshot.items[r].title if r >= 0 else i for i, r in zip(item_ids, rows, strict=True)
        ]
    if created_at is None:
        created_at = (
            np.where(in_cat, snapshot.created_at[np.where(in_cat, rows, 0)], np.nan)
            if len(snapshot)
            else np.full(len(rows), np.nan)
        )
    return CandidateBatch(
        ids=list(item_ids),
        vectors=vectors,
        rows=signal_rows,
        categories=categories,
        popularity=signals.stats.popularity(signal_rows),
        trending=signals.stats.trending(signal_rows, when),
        freshness=freshness(created_at, when, signals.freshness_half_life_days),
        titles=titles,
        numeric=numeric or {},
    )


def case_features(
    snapshot: CatalogueSnapshot,
    signals: Signals,
    history_ids: list[str],
    candidate_ids: list[str],
    as_of: float | None = None,
) -> FeatureMatrix:
    """Features of catalogue candidates for a catalogue history (training / evaluation)."""
    history = history_from_catalogue(snapshot, signals, history_ids)
    cands = candidates_from_catalogue(snapshot, signals, candidate_ids, as_of)
    return compute_features(history, cands, signals.similarity)
