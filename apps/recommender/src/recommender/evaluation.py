"""Offline evaluation: 1 positive vs N sampled unseen items; popularity, item-kNN,
semantic-only and the learned blend scored on the same cases."""

from __future__ import annotations

import math

import numpy as np

from recommender.catalogue import CatalogueSnapshot
from recommender.datasets import Interaction
from recommender.scorer import Signals, case_features
from recommender.splits import RankingCase, sampled_cases

METHODS = ("popularity", "itemknn", "semantic", "blend")


def sampled_rank_metrics(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """HR@k, nDCG@k and AUC of one case with a single positive.

    Ties with negatives count half (the expected rank under random tie-breaking), so a
    method that scores everything equal gets the random-ranking value, not a perfect one.
    """
    pos = float(scores[labels > 0][0])
    neg = scores[labels == 0]
    above = float(np.sum(neg > pos))
    ties = float(np.sum(neg == pos))
    rank = above + 0.5 * ties  # 0-based expected rank
    return {
        f"hr_at_{k}": 1.0 if rank < k else 0.0,
        f"ndcg_at_{k}": 1.0 / math.log2(rank + 2.0) if rank < k else 0.0,
        "auc": float((np.sum(neg < pos) + 0.5 * ties) / max(len(neg), 1)),
    }


def method_scores(
    snapshot: CatalogueSnapshot, signals: Signals, case: RankingCase
) -> dict[str, np.ndarray]:
    """Scores of each method in :data:`METHODS` for one case."""
    fm = case_features(snapshot, signals, case.history, case.candidates, case.as_of)
    h_rows = signals.rows_of(case.history)
    c_rows = signals.rows_of(case.candidates)
    return {
        "popularity": signals.stats.counts[np.clip(c_rows, 0, None)] * (c_rows >= 0),
        "itemknn": signals.similarity.block(h_rows, c_rows).sum(axis=0),
        "semantic": fm.column("semantic"),
        "blend": signals.blend.score(fm.values, fm.names),
    }


def evaluate_methods(
    snapshot: CatalogueSnapshot,
    signals: Signals,
    history_log: list[Interaction],
    target_log: list[Interaction],
    negatives: int = 99,
    seed: int = 13,
    k: int = 10,
    show_progress: bool = True,
) -> dict[str, float]:
    """Mean HR@k, nDCG@k and AUC of every method on the same sampled cases.

    Returns:
        ``{"<method>.hr_at_10": ..., "<method>.ndcg_at_10": ..., "<method>.auc": ...,
        "cases": n}``.
    """
    from tqdm.auto import tqdm

    cases = sampled_cases(
        history_log, target_log, list(snapshot.rows), negatives=negatives, seed=seed
    )
    sums: dict[str, float] = {}
    for case in tqdm(cases, desc="evaluating", disable=not show_progress):
        for method, scores in method_scores(snapshot, signals, case).items():
            for name, value in sampled_rank_metrics(scores, case.labels, k).items():
                key = f"{method}.{name}"
                sums[key] = sums.get(key, 0.0) + value
    out = {key: value / max(len(cases), 1) for key, value in sums.items()}
    out["cases"] = float(len(cases))
    return out
