"""The encoder's kernel (ONNX int8 or fp32) and thread count, chosen at start-up by a
quick measurement.

Both depend on the CPU and on what else runs on it, so neither is a constant:

- **Kernel.** Dynamic-quantised int8 is fast where the CPU has int8 dot-product
  instructions (AVX-512 VNNI, AMX); with AVX2 only, onnxruntime's int8 kernels can be
  barely faster than fp32, or slower. ``prepare`` keeps the fp32 ONNX export of the same
  fine-tuned encoder beside the gated int8 one, and the service times both.
- **Threads.** On an idle machine two threads roughly halve the time; on a busy one their
  spinning threads wait for each other and one thread was faster (measured on a shared
  2-core machine: 100 texts in 2.5 s on one thread, 3.9 s on two).

The service times every (kernel, threads) pair on a request's worth of catalogue texts,
rounds interleaved, and serves the fastest. The two kernels compute the same function
(the int8 one passed a cosine gate against fp32), so catalogue vectors embedded by one
are used with the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Texts timed per candidate (about a rerank's worth of candidates) and timed rounds.
SAMPLE_TEXTS = 64
ROUNDS = 2


@dataclass(frozen=True)
class EncoderChoice:
    """The kernel and thread count kept, and the measurement behind them.

    Attributes:
        kernel: the kernel kept (``"onnx-int8"``, ``"onnx-fp32"``, or ``"served"`` when
            the prepared state offers one model only).
        threads: the thread count kept.
        seconds: ``"<kernel>/<threads>"`` -> the best of its timed rounds (seconds per
            sample); empty when there was nothing to choose between.
        texts: texts per timed sample.
        reason: one line on why this pair was kept.
    """

    kernel: str
    threads: int
    seconds: dict[str, float] = field(default_factory=dict)
    texts: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``/healthz``, the bench's result)."""
        return {
            "kernel": self.kernel,
            "threads": self.threads,
            "ms_per_sample": {k: round(v * 1000, 1) for k, v in self.seconds.items()},
            "sample_texts": self.texts,
            "reason": self.reason,
        }


def choose_encoder(
    load: Callable[[str, int], Any],
    kernels: Sequence[str],
    thread_counts: Sequence[int],
    texts: Sequence[str],
    rounds: int = ROUNDS,
) -> EncoderChoice:
    """Time ``load(kernel, threads).embed(texts)`` for every pair and keep the fastest.

    Rounds are interleaved (A B C D A B C D ...) so every pair sees the same machine
    load; each pair's figure is its best round (the least disturbed one). A single pair
    is kept without timing.

    Args:
        load: builds a predictor for that kernel with that many threads (without an
            embedding cache: the rounds embed the same texts).
        kernels: kernel names to try, the prepared default first.
        thread_counts: thread counts to try, e.g. ``[2, 1]``.
        texts: the sample (a request's worth of item documents).
        rounds: timed rounds per pair, after one untimed warm-up call each.

    Raises:
        ValueError: no kernel or no thread count >= 1.
    """
    names = list(dict.fromkeys(kernels))
    counts = list(dict.fromkeys(int(c) for c in thread_counts if c >= 1))
    if not names or not counts:
        raise ValueError("choose_encoder needs at least one kernel and one thread count >= 1")
    pairs = [(k, n) for k in names for n in counts]
    if len(pairs) == 1 or not texts:
        return EncoderChoice(names[0], counts[0], reason="nothing to choose between")
    from keel_service.threads import fastest

    predictors = {pair: load(*pair) for pair in pairs}
    sample = list(texts)
    measured = fastest(
        {pair: (lambda p=predictor: p.embed(sample)) for pair, predictor in predictors.items()},
        rounds=max(1, rounds),
    )
    best = measured.seconds
    kernel, threads = measured.choice
    seconds = {f"{k}/{n}": best[(k, n)] for k, n in pairs}
    runner_up = min((p for p in pairs if p != (kernel, threads)), key=lambda p: best[p])
    reason = (
        f"{kernel}/{threads} fastest of {len(pairs)} (kernel, threads) pairs on {len(texts)} catalogue texts, "
        f"best of {max(1, rounds)} interleaved rounds: {best[(kernel, threads)] * 1000:.0f} ms "
        f"vs {best[runner_up] * 1000:.0f} ms for {runner_up[0]}/{runner_up[1]}"
    )
    log.info("encoder: %s", reason)
    return EncoderChoice(kernel, threads, seconds, len(texts), reason)


def serving_kernels(manifest: Mapping[str, Any], root: Path) -> dict[str, Path | str]:
    """Kernel name -> model folder (or name) of the prepared state.

    ``manifest["kernels"]`` lists the interchangeable exports of the served encoder
    (written by ``prepare``); an older state serves ``serving_model`` alone.
    """
    from recommender.artifacts import resolve_model

    kernels = manifest.get("kernels") or {}
    if kernels:
        return {name: resolve_model(ref, root) for name, ref in kernels.items()}
    return {"served": resolve_model(manifest["serving_model"], root)}


def load_serving_encoder(
    manifest: Mapping[str, Any],
    root: Path,
    configured_threads: int | None,
    sample: Sequence[str],
    cache_size: int = 0,
) -> tuple[Any, EncoderChoice]:
    """Load the served encoder with the kernel and thread count measured fastest here.

    Args:
        manifest: the prepared state's manifest.
        root: the state directory (model references are relative to it).
        configured_threads: the ``num_threads`` setting; when set, only the kernels are
            timed, on that many threads.
        sample: catalogue texts to time on (``SAMPLE_TEXTS`` of them are used).
        cache_size: the served predictor's exact-repeat embedding cache.

    Returns:
        The predictor and the choice behind it.
    """
    from keel.inference import load_predictor
    from keel_service.threads import serving_threads

    kernels = serving_kernels(manifest, root)
    threads = serving_threads(configured_threads)
    counts = [threads] if configured_threads is not None or threads == 1 else [threads, 1]
    choice = choose_encoder(
        lambda kernel, n: load_predictor(kernels[kernel], num_threads=n),
        list(kernels),
        counts,
        list(sample[:SAMPLE_TEXTS]),
    )
    predictor = load_predictor(
        kernels[choice.kernel], num_threads=choice.threads, cache_size=cache_size
    )
    return predictor, choice
