"""Native thread counts of a serving process: the encoder's and faiss's.

A web process serves many small requests at once; its parallelism comes from concurrent
requests (micro-batched) and from several uvicorn workers, not from splitting one small
matrix product over every core. Left at the libraries' defaults, each worker's
onnxruntime session and faiss's OpenMP pool start one thread per core, and their threads
spin while they wait: with 2 workers on 2 cores that is 4 spinning pools fighting over 2
cores, which doubled the CPU time per encoded text on a busy machine and made a single
faiss search over 80 passages cost milliseconds.

How many threads (and how large a batch) is fastest is a property of the CPU (its SIMD
extensions, its caches) and of what else runs on it, so ``fastest`` times the candidates
at start-up instead of trusting a constant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")

#: uvicorn's default ``--workers`` (it reads this variable); ``start_app_server`` sets it.
WORKERS_ENV = "WEB_CONCURRENCY"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_processes() -> int:
    """Server processes sharing this machine's cores (``WEB_CONCURRENCY``, default 1)."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        return 1


def serving_threads(configured: int | None = None) -> int:
    """Encoder threads for one serving process.

    Args:
        configured: the app's ``num_threads`` setting; used as given when set.

    Returns:
        ``configured``, else the available cores divided among the worker processes
        (at least 1).
    """
    if configured is not None:
        return configured
    return max(1, available_cores() // worker_processes())


def limit_faiss_threads(threads: int = 1) -> None:
    """Run faiss searches on ``threads`` OpenMP threads (process-wide; no-op without
    faiss). A request searches with one query vector: a pool of threads per search only
    adds wake-ups, and concurrent requests already use the cores."""
    try:
        import faiss
    except ImportError:  # faiss is optional for the service layer
        return
    faiss.omp_set_num_threads(int(threads))


@dataclass(frozen=True)
class Measured(Generic[K]):
    """The candidate a start-up measurement kept, and the timings behind it.

    Attributes:
        choice: the candidate kept (the first one when nothing was timed).
        seconds: candidate -> the best of its timed rounds (empty when not timed).
        rounds: timed rounds completed (fewer than asked when the budget ran out).
        elapsed_s: wall seconds the whole measurement took, warm-ups included.
    """

    choice: K
    seconds: dict[K, float] = field(default_factory=dict)
    rounds: int = 0
    elapsed_s: float = 0.0


def fastest(
    candidates: Mapping[K, Callable[[], object]],
    *,
    rounds: int = 2,
    budget_s: float | None = None,
    warm_up: bool = True,
    margin: float = 0.0,
) -> Measured[K]:
    """Time each candidate's call and keep the fastest: a choice that depends on the CPU
    (thread counts, batch sizes, kernels) made at run time from a quick measurement.

    Rounds are interleaved (A B C A B C ...) so every candidate sees the same machine
    load, and each candidate's figure is its best round (the least disturbed one). A
    single candidate is kept without timing.

    Args:
        candidates: candidate -> a call doing one sample's work with it; the first is
            the default (kept when nothing could be timed).
        rounds: timed rounds per candidate.
        budget_s: no new round starts once this many seconds have passed since the
            start (warm-ups included); at least one timed round always runs. None: no
            limit.
        warm_up: call each candidate once untimed first (lazy initialisation, memory
            arenas).
        margin: another candidate replaces the default only when it is faster by more
            than this fraction of the default's time (0.05: 5%), so noise on a busy
            machine does not move the choice.

    Raises:
        ValueError: no candidate, or ``rounds`` < 1.
    """
    if not candidates:
        raise ValueError("fastest needs at least one candidate")
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: must be >= 1")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin={margin}: must be in [0, 1)")
    keys = list(candidates)
    if len(keys) == 1:
        return Measured(keys[0])
    started = time.perf_counter()
    if warm_up:
        for key in keys:
            candidates[key]()
    best = dict.fromkeys(keys, float("inf"))
    done = 0
    while done < rounds:
        for key in keys:
            mark = time.perf_counter()
            candidates[key]()
            best[key] = min(best[key], time.perf_counter() - mark)
        done += 1
        if budget_s is not None and time.perf_counter() - started > budget_s:
            break
    chosen = min(keys, key=lambda k: best[k])
    if best[chosen] > best[keys[0]] * (1.0 - margin):
        chosen = keys[0]
    return Measured(chosen, best, done, time.perf_counter() - started)
