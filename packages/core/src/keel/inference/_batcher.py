"""Micro-batching: requests that arrive within a few milliseconds share one model call."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from keel.errors import ConfigError, DeadlineExceededError, KeelError, QueueFullError

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosedError(KeelError):
    """The micro-batcher was closed; it accepts no more requests."""


@dataclass
class _Request(Generic[T, R]):
    item: T
    deadline: float
    future: Future[R] = field(default_factory=Future)


_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Collects single requests into batches for ``fn`` on one background thread.

    The worker takes the first waiting request, then keeps collecting until it has
    ``max_batch_size`` requests or ``max_wait_ms`` has passed, calls ``fn`` once on the
    batch and hands result ``i`` to caller ``i``. Requests whose deadline passed while
    queued are failed with ``DeadlineExceededError`` and never sent to ``fn``.

    The batch also goes as soon as it is as large as the largest of the last
    ``recent_batches`` batches (and nothing more is already queued): with N steady
    callers each waiting for its answer, the N-th request is the last one that can come,
    so waiting out ``max_wait_ms`` for company would only add latency. A batch that
    gathers more than that raises the mark; a batch that does not reach it waits the
    window out as before (a straggler late under load then still joins it), and the
    mark falls once the larger batches leave the recent ones. One caller alone is
    served without waiting. ``recent_batches=0`` always waits the window out.

    Args:
        fn: maps a list of items to a sequence of results of the same length.
        max_batch_size: most items per ``fn`` call.
        max_wait_ms: how long the first item of a batch waits for company.
        max_queue: most requests waiting; ``submit`` raises ``QueueFullError`` beyond it.
        default_timeout_s: deadline of a request when ``submit`` gets none.

    Example:
        >>> batcher = MicroBatcher(predictor.embed)  # doctest: +SKIP
        >>> vector = batcher.submit("where is my card?")  # doctest: +SKIP
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        default_timeout_s: float = 5.0,
        recent_batches: int = 8,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigError("max_batch_size", max_batch_size, "must be >= 1")
        if max_wait_ms < 0:
            raise ConfigError("max_wait_ms", max_wait_ms, "must be >= 0")
        if max_queue < 1:
            raise ConfigError("max_queue", max_queue, "must be >= 1")
        if default_timeout_s <= 0:
            raise ConfigError("default_timeout_s", default_timeout_s, "must be > 0")
        if recent_batches < 0:
            raise ConfigError("recent_batches", recent_batches, "must be >= 0 (0: always wait)")
        self._fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.default_timeout_s = default_timeout_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self.batches_run = 0
        self.items_run = 0
        self.busy_s = 0.0  # wall seconds spent inside ``fn``
        # Sizes of the last batches; their max is the size at which a batch goes at once.
        self._recent: collections.deque[int] = collections.deque(maxlen=max(1, recent_batches))
        self._adaptive = recent_batches > 0
        self._worker = threading.Thread(target=self._run, name="keel-microbatcher", daemon=True)
        self._worker.start()

    # -- callers -------------------------------------------------------------------------
    def submit(self, item: T, timeout_s: float | None = None) -> R:
        """Queue ``item`` and block until its result is ready.

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting.
            DeadlineExceededError: no result within ``timeout_s`` (default
                ``default_timeout_s``).
            BatcherClosedError: the batcher is closed.
            Exception: whatever ``fn`` raised for this request's batch.
        """
        request = self._enqueue(item, timeout_s)
        remaining = max(0.0, request.deadline - time.monotonic())
        try:
            return request.future.result(timeout=remaining)
        except FutureTimeout:
            request.future.cancel()
            raise DeadlineExceededError(
                f"no result within {remaining:.3f} s (queue length {self._queue.qsize()})"
            ) from None

    async def submit_async(self, item: T, timeout_s: float | None = None) -> R:
        """``submit`` for async code (FastAPI handlers): awaits without blocking the loop."""
        request = self._enqueue(item, timeout_s)
        remaining = max(0.0, request.deadline - time.monotonic())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(request.future), remaining)
        except TimeoutError:
            request.future.cancel()
            raise DeadlineExceededError(f"no result within {remaining:.3f} s") from None

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting requests, finish the batch in flight, fail what still waits."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._worker.join(timeout=timeout_s)
        self._fail_waiting(BatcherClosedError("the micro-batcher is closed"))

    def __enter__(self) -> MicroBatcher[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def queue_length(self) -> int:
        return self._queue.qsize()

    # -- worker --------------------------------------------------------------------------
    def _enqueue(self, item: T, timeout_s: float | None) -> _Request[T, R]:
        if self._closed.is_set():
            raise BatcherClosedError("the micro-batcher is closed")
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        if timeout <= 0:
            raise ConfigError("timeout_s", timeout_s, "must be > 0")
        request: _Request[T, R] = _Request(item=item, deadline=time.monotonic() + timeout)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFullError(
                f"{self.max_queue} requests are already waiting; retry later"
            ) from None
        return request

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            flush_at = time.monotonic() + self.max_wait_s
            expected = max(self._recent, default=1) if self._adaptive else self.max_batch_size
            while len(batch) < self.max_batch_size:
                if len(batch) >= expected:
                    # As many as recently came together: take only what is already queued.
                    flush_at = 0.0
                remaining = flush_at - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._recent.append(len(batch))
            self._process(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _process(self, batch: list[_Request[T, R]]) -> None:
        now = time.monotonic()
        live: list[_Request[T, R]] = []
        for request in batch:
            if request.future.cancelled():
                continue
            if request.deadline <= now:
                request.future.set_exception(
                    DeadlineExceededError("the deadline passed while the request was queued")
                )
                continue
            if request.future.set_running_or_notify_cancel():
                live.append(request)
        if not live:
            return
        started = time.perf_counter()
        try:
            results = self._fn([request.item for request in live])
            if len(results) != len(live):
                raise KeelError(
                    f"batch function returned {len(results)} results for {len(live)} items"
                )
        except Exception as exc:  # every caller of this batch gets the error
            self.busy_s += time.perf_counter() - started
            for request in live:
                request.future.set_exception(exc)
            return
        self.busy_s += time.perf_counter() - started
        self.batches_run += 1
        self.items_run += len(live)
        for request, result in zip(live, results, strict=True):
            request.future.set_result(result)

    def _fail_waiting(self, error: Exception) -> None:
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(pending, _Request) and pending.future.set_running_or_notify_cancel():
                pending.future.set_exception(error)
