"""Maximal marginal relevance (MMR) re-ordering."""

from __future__ import annotations

import numpy as np


def mmr_order(
    relevance: np.ndarray, vectors: np.ndarray, mmr_lambda: float, k: int | None = None
) -> np.ndarray:
    """Order candidates by maximal marginal relevance.

    At each step pick ``argmax λ·rel(i) − (1−λ)·max_{j selected} cos(i, j)`` where ``rel`` is
    the relevance min-max scaled to [0, 1] so that λ means the same for every score scale.
    With ``λ = 1`` this is plain relevance order.

    Args:
        relevance: ``[n]`` scores, higher is better.
        vectors: ``[n, d]`` L2-normalised item vectors.
        mmr_lambda: trade-off in [0, 1].
        k: how many positions to fill greedily; the rest follow in relevance order.

    Returns:
        ``[n]`` candidate indices, best first.
    """
    n = len(relevance)
    by_relevance = np.argsort(-relevance, kind="stable")
    if n == 0 or mmr_lambda >= 1.0:
        return by_relevance
    k = n if k is None else min(k, n)
    span = float(relevance.max() - relevance.min())
    rel = (relevance - relevance.min()) / span if span > 0 else np.zeros(n, dtype=np.float64)
    sims = vectors @ vectors.T  # [n, n] once; each step is then O(n)
    relevance_part = mmr_lambda * rel
    max_sim = np.zeros(n)
    chosen = np.zeros(n, dtype=bool)
    order: list[int] = []
    for step in range(k):
        gain = relevance_part - (1.0 - mmr_lambda) * max_sim if step else relevance_part.copy()
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        order.append(best)
        chosen[best] = True
        max_sim = sims[best] if step == 0 else np.maximum(max_sim, sims[best])
    rest = [int(i) for i in by_relevance if not chosen[i]]
    return np.asarray(order + rest, dtype=np.int64)
