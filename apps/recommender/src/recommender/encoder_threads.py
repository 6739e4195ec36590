"""The encoder's thread count, chosen at start-up by a quick measurement.

Whether a rerank's 100 texts encode faster on one onnxruntime thread or on every core
the process may use depends on the CPU (its SIMD extensions, its cache) and on what else
runs on it: on an idle machine two threads roughly halve the time, on a busy one their
spinning threads wait for each other and one thread was faster (measured on a shared
2-core machine: 100 texts in 2.5 s on one thread, 3.9 s on two). So the service times
both on a request's worth of catalogue texts and keeps the faster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Texts timed per candidate (about a rerank's worth of candidates) and timed rounds.
SAMPLE_TEXTS = 64
ROUNDS = 2


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count kept and the measurement behind it.

    Attributes:
        threads: the thread count kept.
        seconds: thread count -> the best of its timed rounds (seconds per sample).
    """

    threads: int
    seconds: dict[int, float]


def choose_encoder_threads(
    load: Callable[[int], Any],
    candidates: Sequence[int],
    texts: Sequence[str],
    rounds: int = ROUNDS,
) -> ThreadChoice:
    """Time ``load(threads).embed(texts)`` for each thread count and keep the fastest.

    Rounds are interleaved (A B A B ...) so both counts see the same machine load; each
    count's figure is its best round (the least disturbed one). A single candidate is
    kept without timing.

    Args:
        load: builds a predictor with that many threads (without an embedding cache:
            the rounds embed the same texts).
        candidates: thread counts to try, e.g. ``[2, 1]``.
        texts: the sample (a request's worth of item documents).
        rounds: timed rounds per count, after one untimed warm-up call each.
    """
    counts = list(dict.fromkeys(int(c) for c in candidates if c >= 1))
    if not counts:
        raise ValueError("choose_encoder_threads needs at least one thread count >= 1")
    if len(counts) == 1 or not texts:
        return ThreadChoice(counts[0], {})
    predictors = {count: load(count) for count in counts}
    for predictor in predictors.values():
        predictor.embed(list(texts))  # warm-up: lazy initialisation, memory arenas
    best = {count: float("inf") for count in counts}
    for _ in range(max(1, rounds)):
        for count, predictor in predictors.items():
            started = time.perf_counter()
            predictor.embed(list(texts))
            best[count] = min(best[count], time.perf_counter() - started)
    chosen = min(counts, key=lambda c: best[c])
    log.info(
        "encoder threads: %d (%s per %d texts)",
        chosen,
        ", ".join(f"{c} thread(s) {best[c] * 1000:.0f} ms" for c in counts),
        len(texts),
    )
    return ThreadChoice(chosen, best)
