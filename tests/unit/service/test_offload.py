"""keel_service.offload.run_blocking: the result, exceptions, context variables, threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from keel_service.offload import BLOCKING_THREADS, blocking_pool, run_blocking

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def _describe(prefix: str, *, suffix: str) -> tuple[str, str, str]:
    return prefix + suffix, request_id.get(), threading.current_thread().name


def test_runs_on_the_pool_with_the_callers_context() -> None:
    async def main() -> tuple[str, str, str]:
        request_id.set("abc")
        return await run_blocking(_describe, "x", suffix="y")

    value, seen_id, thread = asyncio.run(main())
    assert value == "xy"
    assert seen_id == "abc"
    assert thread.startswith("keel-blocking")
    assert blocking_pool()._max_workers == BLOCKING_THREADS


def test_exceptions_reach_the_caller() -> None:
    def fail() -> None:
        raise LookupError("no such conversation")

    with pytest.raises(LookupError, match="no such conversation"):
        asyncio.run(run_blocking(fail))


def test_concurrent_calls_overlap() -> None:
    barrier = threading.Barrier(4, timeout=30)

    def meet(index: int) -> int:
        barrier.wait()  # only returns once 4 calls run at the same time
        return index

    async def main() -> list[int]:
        return list(await asyncio.gather(*(run_blocking(meet, i) for i in range(4))))

    assert asyncio.run(main()) == [0, 1, 2, 3]
