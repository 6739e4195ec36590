"""numpy's BLAS on one thread in processes that serve an encoder.

After every encoder pass, the heads, normalisation and retrieval run small numpy
matrix products (32 x 384 x 77 for Banking77's head). With numpy's OpenBLAS on its
default one thread per core, such a product wakes a BLAS worker that then competes for
the cores with the encoder runtime's own workers (onnxruntime and torch keep theirs
spinning for a while after a pass). Measured on a 2-core VM (1-layer int8 student,
Banking77 batches of 32): the head's product took about 5 ms per batch instead of
0.04 ms, a sixth of ``classify``'s time; with BLAS on one thread ``classify`` costs the
same as the encoder pass alone.

``limit_blas_threads`` (called by every encoder predictor) sets that once per
process. It changes process-wide state on purpose (a per-call limit would race between
threads, since OpenBLAS's thread count is global); Keel's training runs on torch, whose
threads it does not touch. ``KEEL_BLAS_THREADS`` overrides the count.
"""

from __future__ import annotations

import os
import threading

from keel.errors import ConfigError

_done = False
_lock = threading.Lock()


def blas_threads_setting() -> int:
    """Threads for numpy's BLAS: ``KEEL_BLAS_THREADS`` or 1."""
    raw = os.environ.get("KEEL_BLAS_THREADS", "1").strip() or "1"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError("KEEL_BLAS_THREADS", raw, "must be a whole number >= 1") from None
    if value < 1:
        raise ConfigError("KEEL_BLAS_THREADS", raw, "must be a whole number >= 1")
    return value


def limit_blas_threads() -> None:
    """Limit numpy's BLAS libraries in this process to ``blas_threads_setting()``
    threads (once; later calls do nothing)."""
    global _done
    with _lock:
        if _done:
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas_threads_setting(), user_api="blas")
        _done = True
