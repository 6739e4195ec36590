"""The fast rerank path returns exactly what the straightforward one did.

The reference functions below are the per-item implementations the ranking pipeline
used before its explanation, MMR and rendering steps were vectorised (explanations read
one array row or element per ranked item, MMR re-masked and re-allocated every step,
the body was built as dicts). Every response byte must stay the same: ids, order,
scores, contributions, features and reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import sparse

from recommender.api.ranking import _render
from recommender.blend import BlendModel
from recommender.cooccurrence import ItemSimilarity
from recommender.diversity import mmr_order
from recommender.features import (
    BASE_FEATURES,
    CandidateBatch,
    FeatureMatrix,
    HistoryBatch,
    compute_features,
    recency_weights,
)
from recommender.ranking import (
    HistoryReason,
    RankedItem,
    RankOptions,
    RankResult,
    _neutralise_missing_evidence,
    apply_rules,
    history_drivers,
    rank_candidates,
)
from recommender.service import RankingResponse


# ------------------------------------------------------------------ reference (old) code
def reference_mmr(
    relevance: np.ndarray, vectors: np.ndarray, mmr_lambda: float, k: int | None = None
) -> np.ndarray:
    n = len(relevance)
    by_relevance = np.argsort(-relevance, kind="stable")
    if n == 0 or mmr_lambda >= 1.0:
        return by_relevance
    k = n if k is None else min(k, n)
    span = float(relevance.max() - relevance.min())
    rel = (relevance - relevance.min()) / span if span > 0 else np.zeros(n, dtype=np.float64)
    sims = vectors @ vectors.T
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


@dataclass
class _ReferenceReasons:
    index: list[list[int]]
    drive: list[list[float]]
    similarity: np.ndarray
    cooccurrence: np.ndarray

    @classmethod
    def build(
        cls, history: HistoryBatch, fm: FeatureMatrix, drive: np.ndarray, k: int
    ) -> _ReferenceReasons:
        k = min(k, drive.shape[0])
        top = np.argsort(-drive, axis=0, kind="stable")[:k]
        share = history.weights / max(float(history.weights.sum()), 1e-12)
        inv = np.divide(1.0, share, out=np.zeros_like(share), where=share > 0)[:, None]
        return cls(
            index=top.tolist(),
            drive=np.take_along_axis(drive, top, axis=0).tolist(),
            similarity=fm.history_semantic * inv,
            cooccurrence=fm.history_cooccurrence * inv,
        )

    def reasons(self, i: int, history: HistoryBatch) -> list[HistoryReason]:
        out = []
        for row_idx, row_drive in zip(self.index, self.drive, strict=True):
            j, value = row_idx[i], row_drive[i]
            if value <= 0:
                break
            out.append(
                HistoryReason(
                    id=history.ids[j],
                    title=history.titles[j],
                    similarity=float(self.similarity[j, i]),
                    cooccurrence=float(self.cooccurrence[j, i]),
                    contribution=value,
                )
            )
        return out


def reference_rank(
    history: HistoryBatch,
    candidates: CandidateBatch,
    blend: BlendModel,
    similarity: ItemSimilarity | None,
    options: RankOptions,
) -> RankResult:
    keep, dropped = apply_rules(set(history.ids), candidates, options)
    cands = candidates.take(keep)
    numeric_names = tuple(sorted(cands.numeric))
    fm = compute_features(history, cands, similarity, numeric_names)
    contrib = blend.contributions(fm.values, fm.names)
    names = blend.input_names
    _neutralise_missing_evidence(contrib, names, cands.rows < 0, bool((history.rows >= 0).any()))
    for name in numeric_names:
        if name in blend.feature_names:
            continue
        weight = options.numeric_weights.get(name, 0.0)
        contrib = np.column_stack([contrib, weight * fm.column(name)])
        names.append(name)
    score = contrib.sum(axis=1) + blend.bias
    order = reference_mmr(score, cands.vectors, options.mmr_lambda, options.top_k)
    if options.top_k is not None:
        order = order[: options.top_k]
    table = (
        _ReferenceReasons.build(
            history, fm, history_drivers(fm, contrib, names), options.explain_history
        )
        if options.explain_history > 0 and len(history) and len(cands)
        else None
    )
    items = []
    for rank, i in enumerate(order, start=1):
        i = int(i)
        items.append(
            RankedItem(
                id=cands.ids[i],
                title=cands.titles[i],
                rank=rank,
                score=float(score[i]),
                contributions=dict(zip(names, contrib[i].tolist(), strict=True)),
                features=dict(zip(fm.names, fm.values[i].tolist(), strict=True)),
                because=[] if table is None else table.reasons(i, history),
            )
        )
    return RankResult(items=items, filtered=dropped)


def reference_render(resp: RankingResponse, explain: bool) -> bytes:
    items: list[dict[str, Any]] = []
    for it in resp.result.items:
        entry: dict[str, Any] = {"id": it.id, "title": it.title, "rank": it.rank, "score": it.score}
        if explain:
            entry["contributions"] = it.contributions
            entry["features"] = it.features
            entry["because"] = [
                {
                    "id": r.id,
                    "title": r.title,
                    "similarity": r.similarity,
                    "cooccurrence": r.cooccurrence,
                    "contribution": r.contribution,
                }
                for r in it.because
            ]
        else:
            entry.update(contributions={}, features={}, because=[])
        items.append(entry)
    body = {
        "request_id": resp.request_id,
        "user_id": resp.user_id,
        "bucket": resp.bucket,
        "mmr_lambda": resp.mmr_lambda,
        "history_used": resp.history_used,
        "took_ms": round(resp.took_ms, 3),
        "items": items,
        "filtered": [{"id": f.id, "reason": f.reason} for f in resp.result.filtered],
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


# ------------------------------------------------------------------------------ inputs
CATS = ["cooking", "code", "music", "garden", "travel"]


def _unit(rng: np.random.Generator, n: int, d: int, dtype: type) -> np.ndarray:
    v: np.ndarray = rng.normal(size=(n, d)).astype(dtype)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _inputs(seed: int, numeric: bool) -> tuple[HistoryBatch, CandidateBatch, ItemSimilarity]:
    rng = np.random.default_rng(seed)
    n_items, m, n, d = 300, 50, 100, 32
    sim = sparse.random(n_items, n_items, density=0.05, random_state=seed, format="csr")
    hist_rows = rng.choice(n_items, m, replace=False)
    hist_rows[:3] = -1  # history items unknown to the logs
    cand_rows = rng.choice(n_items, n, replace=False)
    cand_rows[5:9] = -1  # cold candidates
    history = HistoryBatch(
        ids=[f"h{r}-{k}" for k, r in enumerate(hist_rows)],
        vectors=_unit(rng, m, d, np.float32),
        weights=recency_weights(m, 10.0),
        rows=hist_rows,
        categories=[frozenset(rng.choice(CATS, 2).tolist()) for _ in range(m)],
        titles=[f"History {k}" for k in range(m)],
    )
    ids = [f"c{k}" for k in range(n)]
    ids[10] = history.ids[4]  # seen
    ids[11] = ids[12]  # duplicate
    cands = CandidateBatch(
        ids=ids,
        vectors=_unit(rng, n, d, np.float32),
        rows=cand_rows,
        categories=[frozenset(rng.choice(CATS, 1).tolist()) for _ in range(n)],
        popularity=rng.random(n),
        trending=rng.random(n),
        freshness=rng.random(n),
        titles=[f"Candidate {k}" for k in range(n)],
        numeric={"boost": rng.random(n), "price": rng.random(n)} if numeric else {},
    )
    return history, cands, ItemSimilarity(sim.astype(np.float32))


CASES = [
    pytest.param(RankOptions(mmr_lambda=0.7), True, id="diverse-explained"),
    pytest.param(RankOptions(mmr_lambda=1.0), True, id="relevance-explained"),
    pytest.param(RankOptions(mmr_lambda=0.0, top_k=20), True, id="mmr-only-top20"),
    pytest.param(
        RankOptions(mmr_lambda=0.8, numeric_weights={"boost": 0.5}, explain_history=0),
        False,
        id="numeric-unexplained",
    ),
    pytest.param(
        RankOptions(mmr_lambda=0.5, exclude_categories=frozenset({"music"})),
        True,
        id="rules",
    ),
]


@pytest.mark.parametrize(("options", "explain"), CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_rerank_response_is_byte_identical(
    options: RankOptions, explain: bool, seed: int
) -> None:
    history, cands, similarity = _inputs(seed, numeric=bool(options.numeric_weights))
    blend = BlendModel.prior(list(BASE_FEATURES))
    old = reference_rank(history, cands, blend, similarity, options)
    new = rank_candidates(history, cands, blend, similarity, options)
    assert len(new.items) > 10 and new.filtered
    assert new == old  # dataclass equality: ids, order, every float, every reason
    if options.explain_history:
        assert any(item.because for item in new.items)
    resp_old = RankingResponse("rid", "user-1", "diverse", options.mmr_lambda, old, 50, 3.14159)
    resp_new = RankingResponse("rid", "user-1", "diverse", options.mmr_lambda, new, 50, 3.14159)
    assert _render(resp_new, explain).body == reference_render(resp_old, explain)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mmr_lambda", [0.0, 0.3, 0.7, 0.95, 1.0])
@pytest.mark.parametrize("k", [None, 1, 10])
def test_mmr_order_matches_reference(dtype: type, mmr_lambda: float, k: int | None) -> None:
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 60, 16, dtype)
    vectors[5] = vectors[3]  # identical items
    relevance = rng.normal(size=60)
    relevance[[7, 8]] = relevance[9]  # ties
    expected = reference_mmr(relevance, vectors, mmr_lambda, k)
    got = mmr_order(relevance, vectors, mmr_lambda, k)
    assert got.dtype == np.int64
    assert got.tolist() == expected.tolist()
    flat = np.zeros(4)  # every score equal: relevance order
    assert mmr_order(flat, vectors[:4], mmr_lambda, k).tolist() == (
        reference_mmr(flat, vectors[:4], mmr_lambda, k).tolist()
    )
