"""Rerank pipeline: business rules -> features -> blend -> (2nd pass) -> MMR -> reasons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recommender.blend import BlendModel
from recommender.cooccurrence import ItemSimilarity
from recommender.diversity import mmr_order
from recommender.features import CandidateBatch, FeatureMatrix, HistoryBatch, compute_features

#: Inputs that need the candidate to be known to the interaction logs.
ITEM_LOG_INPUTS = ("popularity", "trending", "cooccurrence")
#: Inputs that need at least one history item known to the interaction logs.
HISTORY_LOG_INPUTS = ("cooccurrence",)


def _neutralise_missing_evidence(
    contrib: np.ndarray, names: list[str], cold: np.ndarray, history_known: bool
) -> None:
    """Zero (= an average candidate's value) the log-based contributions that have no
    evidence: for items the logs never saw, and co-occurrence when no history item is in
    the logs. Otherwise "zero popularity / zero co-occurrence" would sink every new item,
    or every catalogue item when the history is sent as free text."""
    for j, name in enumerate(names):
        if not history_known and any(part in name for part in HISTORY_LOG_INPUTS):
            contrib[:, j] = 0.0
        elif cold.any() and any(part in name for part in ITEM_LOG_INPUTS):
            contrib[cold, j] = 0.0


#: Rescores candidates given their indices; returns one additive score per index.
SecondPass = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RankOptions:
    """Per-request ranking options.

    Attributes:
        top_k: how many items to return (None = all that pass the rules).
        mmr_lambda: MMR trade-off in [0, 1]; 1.0 disables diversity.
        exclude_seen: drop candidates that are in the history.
        include_categories: keep only candidates with one of these categories (empty = all).
        exclude_categories: drop candidates with any of these categories.
        exclude_ids: drop these ids.
        numeric_weights: weights of caller-sent numeric features (added to the blend score
            of the raw value; features without a weight are reported, not used).
        explain_history: how many history items each explanation names.
        second_pass_top: how many top candidates a second pass (cross-encoder) rescored.
    """

    top_k: int | None = None
    mmr_lambda: float = 1.0
    exclude_seen: bool = True
    include_categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()
    exclude_ids: frozenset[str] = frozenset()
    numeric_weights: dict[str, float] = field(default_factory=dict)
    explain_history: int = 3
    second_pass_top: int = 20

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda={self.mmr_lambda!r}: must be within [0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k!r}: must be >= 1")


@dataclass
class HistoryReason:
    """A history item that pushed a candidate up."""

    id: str
    title: str
    similarity: float
    cooccurrence: float
    contribution: float


@dataclass
class RankedItem:
    """One reranked candidate with its explanation.

    The fields of this class, :class:`HistoryReason` and :class:`Filtered` are the JSON
    response's keys in order: ``api.ranking`` lets orjson write the dataclasses as they
    are (``test_rec_rerank_equivalence`` checks the bytes)."""

    id: str
    title: str
    rank: int
    score: float
    contributions: dict[str, float]
    features: dict[str, float]
    because: list[HistoryReason]


@dataclass
class Filtered:
    """A candidate removed by a business rule."""

    id: str
    reason: str


@dataclass
class RankResult:
    """Ranked items (best first) and the candidates the rules removed."""

    items: list[RankedItem]
    filtered: list[Filtered]


def apply_rules(
    history_ids: set[str], candidates: CandidateBatch, options: RankOptions
) -> tuple[np.ndarray, list[Filtered]]:
    """Boolean keep-mask over candidates and the reasons for the dropped ones."""
    keep = np.ones(len(candidates), dtype=bool)
    dropped: list[Filtered] = []
    seen_ids: set[str] = set()
    for i, (item_id, cats) in enumerate(zip(candidates.ids, candidates.categories, strict=True)):
        reason = None
        if item_id in seen_ids:
            reason = "duplicate candidate"
        elif options.exclude_seen and item_id in history_ids:
            reason = "already in history"
        elif item_id in options.exclude_ids:
            reason = "excluded id"
        elif options.exclude_categories & cats:
            reason = "excluded category " + ",".join(sorted(options.exclude_categories & cats))
        elif options.include_categories and not options.include_categories & cats:
            reason = "not in included categories"
        seen_ids.add(item_id)
        if reason:
            keep[i] = False
            dropped.append(Filtered(item_id, reason))
    return keep, dropped


def rank_candidates(
    history: HistoryBatch,
    candidates: CandidateBatch,
    blend: BlendModel,
    similarity: ItemSimilarity | None,
    options: RankOptions,
    second_pass: SecondPass | None = None,
) -> RankResult:
    """Score, order and explain candidates for one user.

    Args:
        history: the user's history (oldest first).
        candidates: the candidates.
        blend: the learned feature blend.
        similarity: item-item co-occurrence (None = feature is 0).
        options: rules, MMR λ, top-k.
        second_pass: optional rescoring of the top candidates (cross-encoder), added to
            the score as the ``cross_encoder`` contribution.

    Returns:
        The ranked, explained items and the filtered-out candidates.
    """
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
    if second_pass is not None and len(cands):
        top = np.argsort(-score, kind="stable")[: options.second_pass_top]
        extra = np.zeros(len(cands))
        extra[top] = second_pass(top)
        contrib = np.column_stack([contrib, extra])
        names.append("cross_encoder")
        score = score + extra
    order = mmr_order(score, cands.vectors, options.mmr_lambda, options.top_k)
    if options.top_k is not None:
        order = order[: options.top_k]
    table = (
        _ReasonTable.build(
            history, fm, history_drivers(fm, contrib, names), options.explain_history
        )
        if options.explain_history > 0 and len(history) and len(cands)
        else None
    )
    # Whole arrays become Python floats once (``tolist``), not one row or element at a
    # time per ranked item: the same values, a fraction of the per-item overhead.
    scores = score.tolist()
    contrib_rows = contrib.tolist()
    feature_rows = fm.values.tolist()
    ids, titles, feature_names = cands.ids, cands.titles, fm.names
    items = [
        RankedItem(
            id=ids[i],
            title=titles[i],
            rank=rank,
            score=scores[i],
            contributions=dict(zip(names, contrib_rows[i], strict=True)),
            features=dict(zip(feature_names, feature_rows[i], strict=True)),
            because=[] if table is None else table.reasons(i, history),
        )
        for rank, i in enumerate(order.tolist(), start=1)
    ]
    return RankResult(items=items, filtered=dropped)


def history_drivers(fm: FeatureMatrix, contrib: np.ndarray, names: list[str]) -> np.ndarray:
    """``[m, n]`` how much each history item drove each candidate's score.

    ``semantic`` and ``cooccurrence`` are weighted sums over history items, so their
    positive contributions are split over the history in proportion to each item's term;
    a candidate with neither positive is explained by its plain similarity shares.
    Vectorised over all candidates (explanations cost no per-item Python loops).
    """
    sem = fm.history_semantic.clip(0)
    co = fm.history_cooccurrence.clip(0)
    n = sem.shape[1]
    sem_c = contrib[:, names.index("semantic")].clip(0) if "semantic" in names else np.zeros(n)
    co_c = (
        contrib[:, names.index("cooccurrence")].clip(0) if "cooccurrence" in names else np.zeros(n)
    )
    sem_total = sem.sum(axis=0)
    co_total = co.sum(axis=0)
    drive = sem * np.divide(sem_c, sem_total, out=np.zeros(n), where=sem_total > 0)
    drive += co * np.divide(co_c, co_total, out=np.zeros(n), where=co_total > 0)
    flat = ~drive.any(axis=0)
    if flat.any():
        drive[:, flat] = sem[:, flat] + co[:, flat]
    return drive


@dataclass
class _ReasonTable:
    """Top history drivers of every candidate, computed in one vectorised pass (as
    Python lists: explanations read them element by element)."""

    index: list[list[int]]  # [k][n] history positions, best first
    drive: list[list[float]]  # [k][n]
    similarity: list[list[float]]  # [k][n] raw cosine (weighted term / weight share)
    cooccurrence: list[list[float]]  # [k][n]

    @classmethod
    def build(
        cls, history: HistoryBatch, fm: FeatureMatrix, drive: np.ndarray, k: int
    ) -> _ReasonTable:
        k = min(k, drive.shape[0])
        top = np.argsort(-drive, axis=0, kind="stable")[:k]
        share = history.weights / max(float(history.weights.sum()), 1e-12)
        inv = np.divide(1.0, share, out=np.zeros_like(share), where=share > 0)[:, None]
        similarity = fm.history_semantic * inv
        cooccurrence = fm.history_cooccurrence * inv
        return cls(
            index=top.tolist(),
            drive=np.take_along_axis(drive, top, axis=0).tolist(),
            similarity=np.take_along_axis(similarity, top, axis=0).tolist(),
            cooccurrence=np.take_along_axis(cooccurrence, top, axis=0).tolist(),
        )

    def reasons(self, i: int, history: HistoryBatch) -> list[HistoryReason]:
        out = []
        for r, row_drive in enumerate(self.drive):
            value = row_drive[i]
            if value <= 0:
                break
            j = self.index[r][i]
            out.append(
                HistoryReason(
                    id=history.ids[j],
                    title=history.titles[j],
                    similarity=self.similarity[r][i],
                    cooccurrence=self.cooccurrence[r][i],
                    contribution=value,
                )
            )
        return out
