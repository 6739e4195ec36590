"""Ranking metrics over ranked id lists: MRR@k, nDCG@k, recall@k, hit rate@k, ROC AUC.

``ranked[q]`` is the list of ids returned for query ``q``, best first; ``relevant[q]`` is
the set of its relevant ids (or a dict id -> graded gain for nDCG).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from keel.errors import KeelError


def _check(ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> None:
    if len(ranked) != len(relevant):
        raise KeelError(f"{len(ranked)} rankings but {len(relevant)} relevance sets")
    if not ranked:
        raise KeelError("no queries to score")
    if k < 1:
        raise KeelError(f"k={k!r}: must be >= 1")


def mrr_at_k(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int = 10
) -> float:
    """Mean reciprocal rank of the first relevant id within the top ``k`` (0 if none)."""
    _check(ranked, relevant, k)
    total = 0.0
    for ids, gold in zip(ranked, relevant, strict=True):
        for rank, item in enumerate(ids[:k], start=1):
            if item in gold:
                total += 1.0 / rank
                break
    return total / len(ranked)


def recall_at_k(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int = 10
) -> float:
    """Mean share of each query's relevant ids found in its top ``k``."""
    _check(ranked, relevant, k)
    scores = [
        len(set(ids[:k]) & set(gold)) / len(gold)
        for ids, gold in zip(ranked, relevant, strict=True)
        if gold
    ]
    return float(np.mean(scores)) if scores else 0.0


def hit_rate_at_k(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int = 10
) -> float:
    """Share of queries with at least one relevant id in the top ``k``."""
    _check(ranked, relevant, k)
    return float(
        np.mean(
            [bool(set(ids[:k]) & set(gold)) for ids, gold in zip(ranked, relevant, strict=True)]
        )
    )


def ndcg_at_k(
    ranked: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str] | Mapping[str, float]],
    k: int = 10,
) -> float:
    """Normalised discounted cumulative gain at ``k`` (binary, or graded with a gain dict)."""
    _check(ranked, relevant, k)
    scores = []
    for ids, gold in zip(ranked, relevant, strict=True):
        gains = dict(gold) if isinstance(gold, Mapping) else dict.fromkeys(gold, 1.0)
        dcg = sum(
            gains.get(item, 0.0) / np.log2(rank + 1) for rank, item in enumerate(ids[:k], start=1)
        )
        ideal = sorted(gains.values(), reverse=True)[:k]
        idcg = sum(g / np.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
        scores.append(dcg / idcg if idcg > 0 else 0.0)
    return float(np.mean(scores))


def auc(y_true: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """ROC AUC: probability that a random positive scores above a random negative (ties = 1/2).

    Raises:
        KeelError: lengths differ, or only one class is present.
    """
    truth = np.asarray(y_true, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    if truth.shape != values.shape:
        raise KeelError(f"{truth.shape[0]} labels but {values.shape[0]} scores")
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise KeelError("AUC needs both positive and negative examples")
    from scipy.stats import rankdata

    ranks = rankdata(values)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
