"""Latency, throughput and accuracy measurements of one loaded predictor."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def sixteen_word_inputs(texts: Sequence[str], count: int = 64, words: int = 16) -> list[str]:
    """Deterministic inputs of exactly ``words`` words, built by chaining the given texts."""
    pool = [w for text in texts for w in text.split()]
    if not pool:
        pool = ["word"]
    out = []
    for i in range(count):
        start = (i * 7) % len(pool)
        chunk = [pool[(start + j) % len(pool)] for j in range(words)]
        out.append(" ".join(chunk))
    return out


@dataclass(frozen=True)
class Timing:
    """Speed of a predictor: batch-1 latency percentiles and batch-N throughput."""

    p50_ms_batch1: float
    p95_ms_batch1: float
    throughput_batch32: float

    def as_dict(self) -> dict[str, float]:
        return {
            "p50_ms_batch1": round(self.p50_ms_batch1, 3),
            "p95_ms_batch1": round(self.p95_ms_batch1, 3),
            "throughput_batch32": round(self.throughput_batch32, 1),
        }


def measure_speed(
    predictor: Any,
    latency_inputs: Sequence[str],
    throughput_inputs: Sequence[str],
    *,
    latency_repeats: int = 3,
    batch_size: int = 32,
    classify: bool = True,
) -> Timing:
    """Time ``classify`` (or ``embed`` for encoders) one text at a time and in batches.

    Latency is the wall time of single-text calls (after warm-up), repeated
    ``latency_repeats`` times over ``latency_inputs``; throughput is texts per second
    over ``throughput_inputs`` in batches of ``batch_size``.
    """
    run = predictor.classify if classify else predictor.embed
    for text in list(latency_inputs)[:5]:
        run([text])
    run(list(throughput_inputs)[:batch_size])
    latencies = []
    for _ in range(latency_repeats):
        for text in latency_inputs:
            started = time.perf_counter()
            run([text])
            latencies.append(time.perf_counter() - started)
    texts = list(throughput_inputs)
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        run(texts[start : start + batch_size])
    elapsed = time.perf_counter() - started
    return Timing(
        p50_ms_batch1=float(np.percentile(latencies, 50) * 1000),
        p95_ms_batch1=float(np.percentile(latencies, 95) * 1000),
        throughput_batch32=len(texts) / max(elapsed, 1e-9),
    )


def accuracy(predicted: Sequence[Any], expected: Sequence[Any]) -> float:
    """Share of exact matches (labels, or label sets for multi-label data)."""
    if not expected:
        return float("nan")

    def norm(value: Any) -> Any:
        return frozenset(value) if isinstance(value, (list, tuple, set, frozenset)) else value

    return float(np.mean([norm(p) == norm(e) for p, e in zip(predicted, expected, strict=True)]))
