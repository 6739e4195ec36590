"""``chat_threads``: at most that many ``/chat`` turns of one worker run at once."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.responses import Response
from pydantic import ValidationError

from customer_service.api import chat as chat_api
from customer_service.api.deps import ChatContext
from customer_service.config import Settings
from keel_service.offload import BlockingLimit


@pytest.mark.parametrize("limit", [1, 3])
def test_at_most_chat_threads_turns_run_at_once(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, running, seen = threading.Lock(), [0], []

    def answer_chat(body: Any, context: Any) -> Response:
        with lock:
            running[0] += 1
            seen.append(running[0])
        threading.Event().wait(0.02)  # a turn's worth of work, for the others to pile up
        with lock:
            running[0] -= 1
        return Response(b"{}", media_type="application/json")

    monkeypatch.setattr(chat_api, "answer_chat", answer_chat)
    runtime = SimpleNamespace(settings=Settings(chat_threads=limit), chat_lane=BlockingLimit())
    context = ChatContext(runtime, None)  # type: ignore[arg-type]

    async def main() -> list[Response]:
        return list(await asyncio.gather(*(chat_api.chat(None, context) for _ in range(12))))  # type: ignore[arg-type]

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12
    assert len(seen) == 12 and max(seen) <= limit
    if limit > 1:
        assert max(seen) > 1  # the turns did overlap


def test_chat_threads_setting_is_bounded() -> None:
    assert Settings().chat_threads == 16
    for bad in (0, 65):
        with pytest.raises(ValidationError, match="chat_threads"):
            Settings(chat_threads=bad)
