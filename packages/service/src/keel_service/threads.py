"""Native thread counts of a serving process: the encoder's and faiss's.

A web process serves many small requests at once; its parallelism comes from concurrent
requests (micro-batched) and from several uvicorn workers, not from splitting one small
matrix product over every core. Left at the libraries' defaults, each worker's
onnxruntime session and faiss's OpenMP pool start one thread per core, and their threads
spin while they wait: with 2 workers on 2 cores that is 4 spinning pools fighting over 2
cores, which doubled the CPU time per encoded text on a busy machine and made a single
faiss search over 80 passages cost milliseconds.
"""

from __future__ import annotations

import os

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
