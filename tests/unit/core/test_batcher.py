"""``MicroBatcher``: per-caller results under concurrency, batching, deadline, queue bound."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from keel import ConfigError, DeadlineExceededError, QueueFullError
from keel.inference import BatcherClosedError, MicroBatcher


def test_each_caller_gets_its_own_result_and_calls_share_batches() -> None:
    batch_sizes: list[int] = []

    def square_all(items: list[int]) -> list[int]:
        batch_sizes.append(len(items))
        time.sleep(0.01)  # a model call takes time, so later callers pile up
        return [x * x for x in items]

    with (
        MicroBatcher(
            square_all, max_batch_size=16, max_wait_ms=5, default_timeout_s=120
        ) as batcher,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        results = list(pool.map(batcher.submit, range(200)))
    assert results == [x * x for x in range(200)]
    assert sum(batch_sizes) == 200
    assert max(batch_sizes) <= 16
    assert len(batch_sizes) < 100, f"requests were not batched: {batch_sizes}"


def test_deadline_is_honoured_while_the_model_is_busy() -> None:
    release = threading.Event()

    def slow(items: list[str]) -> list[str]:
        release.wait(2.0)
        return items

    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_ms=0)
    try:
        blocker = threading.Thread(target=batcher.submit, args=("first",), kwargs={"timeout_s": 5})
        blocker.start()
        time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            batcher.submit("second", timeout_s=0.1)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        blocker.join()
        batcher.close()


def test_expired_requests_are_not_sent_to_the_model() -> None:
    seen: list[str] = []
    release = threading.Event()

    def record(items: list[str]) -> list[str]:
        seen.extend(items)
        release.wait(1.0)
        return items

    batcher = MicroBatcher(record, max_batch_size=1, max_wait_ms=0)
    blocker = threading.Thread(target=batcher.submit, args=("first",))
    blocker.start()
    time.sleep(0.05)
    with pytest.raises(DeadlineExceededError):
        batcher.submit("expired", timeout_s=0.05)
    release.set()
    blocker.join()
    assert batcher.submit("after") == "after"
    batcher.close()
    assert "expired" not in seen


def test_queue_bound_rejects_with_queue_full() -> None:
    release = threading.Event()

    def blocked(items: list[int]) -> list[int]:
        release.wait(2.0)
        return items

    batcher = MicroBatcher(blocked, max_batch_size=1, max_wait_ms=0, max_queue=2)
    threads = [threading.Thread(target=batcher.submit, args=(i,)) for i in range(3)]
    threads[0].start()
    time.sleep(0.05)  # item 0 is now inside the model call, the queue is empty
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.05)
    with pytest.raises(QueueFullError):
        batcher.submit(99)
    release.set()
    for thread in threads:
        thread.join()
    batcher.close()


def test_model_errors_reach_every_caller_of_the_batch() -> None:
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("model exploded")

    with MicroBatcher(broken) as batcher, pytest.raises(RuntimeError, match="exploded"):
        batcher.submit(1)


def test_wrong_result_count_is_an_error() -> None:
    with (
        MicroBatcher(lambda items: items[:-1]) as batcher,
        pytest.raises(Exception, match="results"),
    ):
        batcher.submit(1)


def test_submit_async_from_an_event_loop() -> None:
    with MicroBatcher(lambda items: [x + 1 for x in items], max_wait_ms=2) as batcher:

        async def many() -> list[int]:
            # A generous deadline: this checks results, not speed, and CI machines can be busy.
            calls = (batcher.submit_async(i, timeout_s=120) for i in range(50))
            return list(await asyncio.gather(*calls))

        assert asyncio.run(many()) == [i + 1 for i in range(50)]


def test_closed_batcher_refuses_requests_and_bad_config_is_rejected() -> None:
    batcher = MicroBatcher(lambda items: items)
    batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.submit(1)
    with pytest.raises(ConfigError, match="max_batch_size"):
        MicroBatcher(lambda items: items, max_batch_size=0)


def test_once_n_came_together_a_batch_of_n_goes_without_waiting_out_the_window() -> None:
    """After a batch of 8, the next 8 requests go as soon as all are in: with a 60 s
    window and a 20 s deadline, a batch that waited the window out would fail them."""
    gate = threading.Event()
    batch_sizes: list[int] = []

    def double(items: list[int]) -> list[int]:
        batch_sizes.append(len(items))
        gate.wait(30)
        return [2 * x for x in items]

    with (
        MicroBatcher(double, max_batch_size=32, max_wait_ms=60_000, default_timeout_s=20) as b,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        first = pool.submit(b.submit, 0)  # a lone request goes at once (and blocks the model)
        while not batch_sizes:
            time.sleep(0.001)
        queued = [pool.submit(b.submit, x) for x in range(1, 8)]
        while b.queue_length < 7:
            time.sleep(0.001)
        gate.set()  # the 7 queued ones then go together
        assert first.result() == 0 and [f.result() for f in queued] == list(range(2, 16, 2))
        again = list(pool.map(b.submit, range(100, 107)))
        assert again == [2 * x for x in range(100, 107)]
    assert batch_sizes[:2] == [1, 7]
    assert sum(batch_sizes) == 15


def test_a_lone_caller_is_served_without_waiting_out_the_window() -> None:
    with MicroBatcher(
        lambda items: [x + 1 for x in items], max_wait_ms=60_000, default_timeout_s=10
    ) as batcher:
        assert [batcher.submit(i) for i in range(5)] == [1, 2, 3, 4, 5]
