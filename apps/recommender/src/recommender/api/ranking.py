"""``POST /rerank`` and ``POST /recommend``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from keel_service.offload import BlockingLimit
from recommender.api.deps import ServiceDep, SettingsDep
from recommender.api.errors import validation_detail
from recommender.api.schemas import Filters, ItemEntry, RankingOut, RecommendRequest, RerankRequest
from recommender.ranking import RankOptions
from recommender.service import ItemRef, RankingResponse

router = APIRouter(tags=["ranking"])


def _refs(entries: list[ItemEntry]) -> list[ItemRef]:
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(ItemRef(e))
        else:
            out.append(ItemRef(e.id, e.text, e.title, e.categories, dict(e.features), e.timestamp))
    return out


def _check_size(field: str, size: int, limit: int) -> None:
    if size > limit:
        raise RequestValidationError(
            validation_detail(field, f"at most {limit} entries allowed, got {size}", "too_long")
        )


def _options(
    filters: Filters,
    top_k: int | None,
    exclude_seen: bool,
    weights: dict[str, float],
    explain: bool,
) -> RankOptions:
    return RankOptions(
        top_k=top_k,
        exclude_seen=exclude_seen,
        include_categories=frozenset(filters.include_categories),
        exclude_categories=frozenset(filters.exclude_categories),
        exclude_ids=frozenset(filters.exclude_ids),
        numeric_weights=dict(weights),
        explain_history=3 if explain else 0,
    )


def _render(resp: RankingResponse, explain: bool) -> Response:
    """Serialise directly (the response model documents the shape; skipping its
    re-validation keeps 100-item responses cheap). With ``explain`` a 100-item body holds
    about 2,500 floats: orjson writes it several times faster than ``json.dumps``, and
    writes the ranked items' dataclasses itself (their fields are the response's keys, in
    order), so no dict is built per item or per reason."""
    items: list[Any]
    if explain:
        items = resp.result.items
    else:
        items = [
            {
                "id": it.id,
                "title": it.title,
                "rank": it.rank,
                "score": it.score,
                "contributions": {},
                "features": {},
                "because": [],
            }
            for it in resp.result.items
        ]
    body = {
        "request_id": resp.request_id,
        "user_id": resp.user_id,
        "bucket": resp.bucket,
        "mmr_lambda": resp.mmr_lambda,
        "history_used": resp.history_used,
        "took_ms": round(resp.took_ms, 3),
        "items": items,
        "filtered": resp.result.filtered,
    }
    return Response(
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
    )


async def _on_ranking_thread(request: Request, limit: int, fn: Callable[[], Response]) -> Response:
    """Run ``fn`` on the shared blocking pool (``keel_service.offload``), at most
    ``limit`` rankings of this worker at a time.

    A ranking is a few milliseconds of CPU that holds the GIL for most of it (small numpy
    calls release and retake it many times); a limit below the pool's 40 threads queues
    the rest on the event loop, where waiting costs nothing."""
    lane: BlockingLimit | None = getattr(request.app.state, "rank_lane", None)
    if lane is None:
        lane = request.app.state.rank_lane = BlockingLimit()
    return await lane.run(limit, fn)


@router.post("/rerank", response_model=RankingOut, summary="Rerank candidates for a user")
async def rerank(
    body: RerankRequest, service: ServiceDep, settings: SettingsDep, request: Request
) -> Response:
    """Score the candidates' text against the user's history, blend with the other
    signals, apply rules and MMR, and explain each position. The A/B bucket is returned."""
    _check_size("candidates", len(body.candidates), settings.max_candidates)
    _check_size("history", len(body.history), settings.max_history)

    def run() -> Response:
        options = _options(
            body.filters, body.top_k, body.exclude_seen, body.feature_weights, body.explain
        )
        resp = service.rerank(
            body.user_id,
            _refs(body.history),
            _refs(body.candidates),
            options,
            mmr_lambda=body.mmr_lambda,
            as_of=body.as_of,
        )
        return _render(resp, body.explain)

    return await _on_ranking_thread(request, settings.rank_threads, run)


@router.post("/recommend", response_model=RankingOut, summary="Recommend from the catalogue")
async def recommend(
    body: RecommendRequest, service: ServiceDep, settings: SettingsDep, request: Request
) -> Response:
    """Retrieve candidates from the FAISS index with the user's interest vector, then rerank."""
    _check_size("history", len(body.history), settings.max_history)

    def run() -> Response:
        options = _options(body.filters, body.top_k, body.exclude_seen, {}, body.explain)
        resp = service.recommend(
            body.user_id, _refs(body.history), options, body.pool_size, body.mmr_lambda
        )
        return _render(resp, body.explain)

    return await _on_ranking_thread(request, settings.rank_threads, run)
