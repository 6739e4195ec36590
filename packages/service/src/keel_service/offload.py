"""Blocking work of an ``async`` endpoint on a thread pool, with less CPU than FastAPI's.

FastAPI runs a plain ``def`` endpoint through ``anyio.to_thread.run_sync`` (a capacity
limiter, a cancellation checkpoint and anyio's own worker queue). For a request that
costs a few milliseconds of CPU in all, that hand-off is a measurable share: an
in-process count (32 concurrent tasks, uvloop) found about 65 microseconds of CPU per
hop through anyio and about 25 through ``loop.run_in_executor`` on a plain
``ThreadPoolExecutor``. :func:`run_blocking` is the second, with the caller's context
variables copied as anyio does. :class:`BlockingLimit` caps how many calls of one kind
(a worker's rankings) run on the pool at once; the others wait on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Threads of the shared pool: anyio's default limit for FastAPI's ``def`` endpoints.
BLOCKING_THREADS = 40

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def blocking_pool() -> ThreadPoolExecutor:
    """The process's pool for :func:`run_blocking` (made on first use, so a forked
    worker process gets its own)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="keel-blocking")
    return _pool


async def run_blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` on the shared thread pool, awaited; its exceptions are
    raised here. If the awaiting task is cancelled the call still runs to its end."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(blocking_pool(), call)


class BlockingLimit:
    """At most ``limit`` calls through :meth:`run` on the shared pool at a time.

    One instance per app and kind of work. The semaphore is made for the running event
    loop and the limit it is called with, and made again when either changes (a
    settings reload, a test client's new loop). A limit at or above the pool's size
    adds no semaphore: the pool itself queues the rest.
    """

    def __init__(self) -> None:
        self._key: tuple[asyncio.AbstractEventLoop, int] | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _for(self, limit: int) -> asyncio.Semaphore | None:
        if limit >= BLOCKING_THREADS:
            return None
        key = (asyncio.get_running_loop(), limit)
        if self._key != key:
            self._key, self._semaphore = key, asyncio.Semaphore(limit)
        return self._semaphore

    async def run(self, limit: int, func: Callable[[], T]) -> T:
        """``func()`` on the shared pool once fewer than ``limit`` others of this
        instance are running; see :func:`run_blocking`."""
        if limit < 1:
            raise ValueError(f"limit={limit}: must be >= 1")
        semaphore = self._for(limit)
        if semaphore is None:
            return await run_blocking(func)
        async with semaphore:
            return await run_blocking(func)
