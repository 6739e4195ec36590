"""Thread counts of a serving process (keel_service.threads)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel_service import threads


@pytest.mark.parametrize(
    ("cores", "workers", "configured", "expected"),
    [
        (2, None, None, 2),  # one process: every core
        (2, "2", None, 1),  # two workers share two cores
        (2, "4", None, 1),  # never below one
        (16, "4", None, 4),
        (2, "2", 3, 3),  # an explicit setting wins
        (2, "not-a-number", None, 2),  # a broken variable counts as one worker
    ],
)
def test_serving_threads_divides_the_cores_among_the_workers(
    monkeypatch: pytest.MonkeyPatch,
    cores: int,
    workers: str | None,
    configured: int | None,
    expected: int,
) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    if workers is None:
        monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    else:
        monkeypatch.setenv(threads.WORKERS_ENV, workers)
    assert threads.serving_threads(configured) == expected


def test_limit_faiss_threads_sets_the_openmp_pool() -> None:
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    try:
        threads.limit_faiss_threads(1)
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)


class _FakeClock:
    """``time.perf_counter`` that only moves when a candidate "works"."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


def test_fastest_keeps_the_candidate_with_the_best_round(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    calls: list[str] = []
    # "b" has one slow round (a disturbed one); its best round still wins.
    costs = {"a": [3.0, 3.0, 3.0], "b": [1.0, 9.0, 1.0], "c": [2.0, 2.0, 2.0]}

    def make(name: str) -> Callable[[], None]:
        def call() -> None:
            calls.append(name)
            clock.work(costs[name][sum(c == name for c in calls) - 1])

        return call

    result = threads.fastest({name: make(name) for name in costs}, rounds=2)
    assert result.choice == "b"
    assert result.seconds == {"a": 3.0, "b": 1.0, "c": 2.0}
    assert result.rounds == 2
    assert calls == ["a", "b", "c"] * 3  # one warm-up call each, then interleaved rounds
    assert result.elapsed_s == sum(sum(c) for c in costs.values())


def test_fastest_stops_at_the_budget_after_a_full_round(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    result = threads.fastest(
        {2: lambda: clock.work(2.0), 1: lambda: clock.work(1.0)},
        rounds=5,
        budget_s=0.5,
        warm_up=False,
    )
    assert (result.choice, result.rounds) == (1, 1)


def test_fastest_keeps_the_default_within_the_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    near = {"default": lambda: clock.work(1.0), "other": lambda: clock.work(0.97)}
    assert threads.fastest(near, margin=0.05).choice == "default"  # 3% faster: noise
    assert threads.fastest(near).choice == "other"
    far = {"default": lambda: clock.work(1.0), "other": lambda: clock.work(0.5)}
    assert threads.fastest(far, margin=0.05).choice == "other"
    with pytest.raises(ValueError, match="margin"):
        threads.fastest(far, margin=1.0)


def test_fastest_with_one_candidate_times_nothing() -> None:
    called: list[int] = []
    result = threads.fastest({4: lambda: called.append(4)})
    assert (result.choice, result.seconds, result.rounds, called) == (4, {}, 0, [])
    with pytest.raises(ValueError, match="at least one candidate"):
        threads.fastest({})
    with pytest.raises(ValueError, match="rounds=0"):
        threads.fastest({1: list, 2: list}, rounds=0)
