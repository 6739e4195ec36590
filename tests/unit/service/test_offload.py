"""keel_service.offload: run_blocking's result, exceptions, context variables and threads;
BlockingLimit's cap on concurrent calls."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest

from keel_service.offload import BLOCKING_THREADS, BlockingLimit, blocking_pool, run_blocking

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


def _counting_work(seen: list[int]) -> Callable[[], str]:
    """A call that records how many calls run at once while it runs."""
    lock, running = threading.Lock(), [0]

    def work() -> str:
        with lock:
            running[0] += 1
            seen.append(running[0])
        threading.Event().wait(0.01)  # long enough for the other calls to pile up
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    return work


@pytest.mark.parametrize("limit", [1, 3, BLOCKING_THREADS])
def test_blocking_limit_caps_concurrent_calls(limit: int) -> None:
    seen: list[int] = []
    work = _counting_work(seen)
    lane = BlockingLimit()

    async def main() -> list[str]:
        return list(await asyncio.gather(*(lane.run(limit, work) for _ in range(12))))

    # The same instance on two event loops, one after the other (a test client's new
    # loop, a settings reload): each loop gets a semaphore of its own.
    for _ in range(2):
        names = asyncio.run(main())
        assert len(names) == 12 and all(n.startswith("keel-blocking") for n in names)
    assert len(seen) == 24
    assert max(seen) <= min(limit, BLOCKING_THREADS)
    if limit > 1:
        assert max(seen) > 1  # the calls did overlap


def test_blocking_limit_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit=0"):
        asyncio.run(BlockingLimit().run(0, lambda: None))
