"""Blocking work of an ``async`` endpoint on a thread pool, with less CPU than FastAPI's.

FastAPI runs a plain ``def`` endpoint through ``anyio.to_thread.run_sync`` (a capacity
limiter, a cancellation checkpoint and anyio's own worker queue). For a request that
costs a few milliseconds of CPU in all, that hand-off is a measurable share: an
in-process count (32 concurrent tasks, uvloop) found about 65 microseconds of CPU per
hop through anyio and about 25 through ``loop.run_in_executor`` on a plain
``ThreadPoolExecutor``. :func:`run_blocking` is the second, with the caller's context
variables copied as anyio does.
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
