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

    Attributes:
        stats: popularity and trending counts per catalogue row.
        similarity: item-item co-occurrence similarity (catalogue rows).
        blend: the learned blend.
        history_half_life: recency weighting of history positions.
        freshness_half_life_days: decay of item freshness.
    """

    stats: ItemStats
    similarity: ItemSimilarity
    blend: BlendModel
    history_half_life: float = 10.0
    freshness_half_life_days: float = 365.0


def history_from_catalogue(
    snapshot: CatalogueSnapshot, item_ids: list[str], half_life: float
) -> HistoryBatch:
    """History batch of catalogue items (ids not in the catalogue are skipped)."""
    rows = snapshot.row_of(item_ids)
    ok = rows >= 0
    rows = rows[ok]
    ids = [i for i, good in zip(item_ids, ok, strict=True) if good]
    return HistoryBatch(
        ids=ids,
        vectors=snapshot.vectors[rows],
        weights=recency_weights(len(ids), half_life),
        rows=rows,
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
    """Candidate batch from rows (-1 = not catalogued) plus caller-given vectors/metadata.

    ``as_of`` is the moment the ranking is for (trending window and freshness are measured
    back from it); None means the end of the interaction log.
    """
    when = signals.stats.reference_time if as_of is None else as_of
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
        rows=rows,
        categories=categories,
        popularity=signals.stats.popularity(rows),
        trending=signals.stats.trending(rows, when),
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
    history = history_from_catalogue(snapshot, history_ids, signals.history_half_life)
    cands = candidates_from_catalogue(snapshot, signals, candidate_ids, as_of)
    return compute_features(history, cands, signals.similarity)
