"""Thread counts of a serving process (keel_service.threads)."""

from __future__ import annotations

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
