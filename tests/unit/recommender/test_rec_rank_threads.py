"""``rank_threads``: at most that many rankings of one worker run at once."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from recommender.api.ranking import _on_ranking_thread
from recommender.config import Settings


def _app(limit: int, seen: list[int]) -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()
    running = [0]

    def rank() -> Response:
        with lock:
            running[0] += 1
            seen.append(running[0])
        time.sleep(0.02)  # a ranking's worth of work, long enough for others to pile up
        with lock:
            running[0] -= 1
        return Response(b"{}", media_type="application/json")

    @app.post("/rank")
    async def endpoint(request: Request) -> Response:
        return await _on_ranking_thread(request, limit, rank)

    return app


async def _concurrent(app: FastAPI, n: int) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.post("/rank") for _ in range(n)))
    return [r.status_code for r in responses]


@pytest.mark.parametrize("limit", [1, 3])
def test_at_most_rank_threads_rankings_run_at_once(limit: int) -> None:
    seen: list[int] = []
    statuses = asyncio.run(_concurrent(_app(limit, seen), 12))
    assert statuses == [200] * 12
    assert len(seen) == 12
    assert max(seen) <= limit


def test_rank_threads_setting_is_bounded() -> None:
    assert Settings().rank_threads == 8
    assert Settings(rank_threads=2).rank_threads == 2
    for bad in (0, 65):
        with pytest.raises(ValidationError, match="rank_threads"):
            Settings(rank_threads=bad)
