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
    # λ·rel with the chosen candidates set to -inf, so the gain of a chosen one is -inf
    # without masking every step; the buffers are reused (a few numpy calls per step).
    relevance_part = mmr_lambda * rel
    penalty = 1.0 - mmr_lambda
    max_sim = np.zeros(n, dtype=sims.dtype)
    scaled = np.empty(n, dtype=sims.dtype)
    gain = np.empty(n, dtype=np.result_type(relevance_part, sims))
    order: list[int] = []
    for step in range(k):
        np.multiply(max_sim, penalty, out=scaled)
        np.subtract(relevance_part, scaled, out=gain)
        best = int(gain.argmax())
        order.append(best)
        relevance_part[best] = -np.inf
        if step == 0:
            max_sim[:] = sims[best]
        else:
            np.maximum(max_sim, sims[best], out=max_sim)
    chosen = np.zeros(n, dtype=bool)
    chosen[order] = True
    rest = by_relevance[~chosen[by_relevance]]
    return np.concatenate([np.asarray(order, dtype=np.int64), rest.astype(np.int64)])
