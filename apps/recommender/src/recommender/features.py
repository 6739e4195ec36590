"""Per-candidate ranking features, vectorised over the whole candidate list."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.cooccurrence import ItemSimilarity

#: Features the learned blend always sees, in this order.
BASE_FEATURES: tuple[str, ...] = (
    "semantic",
    "semantic_max",
    "cooccurrence",
    "cooccurrence_sum",
    "popularity",
    "trending",
    "freshness",
    "category_match",
)


@dataclass
class HistoryBatch:
    """A user's history, oldest first.

    Attributes:
        ids: item ids.
        vectors: ``[m, d]`` L2-normalised embeddings.
        weights: ``[m]`` recency weights (see :func:`recency_weights`).
        rows: ``[m]`` signal rows (co-occurrence, popularity), -1 for items without signals.
        categories: category set per item.
        titles: display titles (for explanations).
    """

    ids: list[str]
    vectors: np.ndarray
    weights: np.ndarray
    rows: np.ndarray
    categories: list[frozenset[str]]
    titles: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class CandidateBatch:
    """Candidates to score.

    Attributes:
        ids: item ids.
        vectors: ``[n, d]`` L2-normalised embeddings.
        rows: ``[n]`` signal rows (co-occurrence, popularity), -1 for items without signals.
        categories: category set per item.
        popularity / trending / freshness: ``[n]`` item signals in [0, 1].
        numeric: caller-supplied numeric features, name -> ``[n]`` (missing = 0).
        titles: display titles.
    """

    ids: list[str]
    vectors: np.ndarray
    rows: np.ndarray
    categories: list[frozenset[str]]
    popularity: np.ndarray
    trending: np.ndarray
    freshness: np.ndarray
    titles: list[str]
    numeric: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, keep: np.ndarray) -> CandidateBatch:
        """The candidates at the (boolean or integer) positions ``keep``."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return CandidateBatch(
            ids=[self.ids[i] for i in idx],
            vectors=self.vectors[idx],
            rows=self.rows[idx],
            categories=[self.categories[i] for i in idx],
            popularity=self.popularity[idx],
            trending=self.trending[idx],
            freshness=self.freshness[idx],
            titles=[self.titles[i] for i in idx],
            numeric={k: v[idx] for k, v in self.numeric.items()},
        )


@dataclass
class FeatureMatrix:
    """Features of every candidate plus what explanations need.

    Attributes:
        names: column names.
        values: ``[n, len(names)]``.
        history_semantic: ``[m, n]`` weighted similarity share of each history item.
        history_cooccurrence: ``[m, n]`` weighted co-occurrence share of each history item.
    """

    names: list[str]
    values: np.ndarray
    history_semantic: np.ndarray
    history_cooccurrence: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """One feature column by name."""
        return self.values[:, self.names.index(name)]


def recency_weights(n: int, half_life: float = 10.0) -> np.ndarray:
    """Weights for a history of ``n`` items, oldest first: the newest weighs 1, and the
    weight halves every ``half_life`` positions back."""
    if half_life <= 0:
        raise ValueError(f"half_life={half_life}: must be > 0")
    steps_back = np.arange(n - 1, -1, -1, dtype=np.float64)
    return 0.5 ** (steps_back / half_life)


def compute_features(
    history: HistoryBatch,
    candidates: CandidateBatch,
    similarity: ItemSimilarity | None,
    numeric_names: tuple[str, ...] = (),
) -> FeatureMatrix:
    """Compute :data:`BASE_FEATURES` (+ ``numeric_names``) for every candidate.

    ``semantic`` is the recency-weighted mean cosine between history items and the
    candidate; ``semantic_max`` the largest single cosine; ``cooccurrence`` the weighted
    mean item-kNN similarity and ``cooccurrence_sum`` the plain item-kNN score (sum); ``category_match`` the weighted share of history items that
    share a category with the candidate. An empty history gives zeros for these.
    """
    n, m = len(candidates), len(history)
    total = float(history.weights.sum()) if m else 0.0
    if m and total > 0:
        w = (history.weights / total)[:, None]
        cos = history.vectors @ candidates.vectors.T  # [m, n]
        hist_sem = w * cos
        semantic = hist_sem.sum(axis=0)
        semantic_max = cos.max(axis=0)
        if similarity is not None:
            co_block = similarity.block(history.rows, candidates.rows)
        else:
            co_block = np.zeros((m, n), dtype=np.float32)
        hist_co = w * co_block
        co_sum = co_block.sum(axis=0)
        cooccurrence = hist_co.sum(axis=0)
        category_match = (w * _category_overlap(history.categories, candidates.categories)).sum(
            axis=0
        )
    else:
        hist_sem = np.zeros((m, n))
        hist_co = np.zeros((m, n))
        semantic = semantic_max = cooccurrence = category_match = co_sum = np.zeros(n)
    columns = [
        semantic,
        semantic_max,
        cooccurrence,
        co_sum,
        candidates.popularity,
        candidates.trending,
        candidates.freshness,
        category_match,
    ]
    for name in numeric_names:
        columns.append(candidates.numeric.get(name, np.zeros(n)))
    values = np.column_stack(columns).astype(np.float64) if n else np.zeros((0, len(columns)))
    return FeatureMatrix(
        names=[*BASE_FEATURES, *numeric_names],
        values=values,
        history_semantic=hist_sem,
        history_cooccurrence=hist_co,
    )


def _category_overlap(
    history: list[frozenset[str]], candidates: list[frozenset[str]]
) -> np.ndarray:
    """``[m, n]`` 1.0 where history item and candidate share a category."""
    vocab: dict[str, int] = {}
    for cats in (*history, *candidates):
        for c in cats:
            vocab.setdefault(c, len(vocab))
    if not vocab:
        return np.zeros((len(history), len(candidates)))
    h = _indicator(history, vocab)
    c = _indicator(candidates, vocab)
    return ((h @ c.T) > 0).astype(np.float64)


def _indicator(sets: list[frozenset[str]], vocab: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(sets), len(vocab)), dtype=np.float32)
    for i, cats in enumerate(sets):
        for c in cats:
            out[i, vocab[c]] = 1.0
    return out
