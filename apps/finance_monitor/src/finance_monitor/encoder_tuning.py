"""The scorer's encoder threads and batch size, chosen at start-up by a quick measurement.

Which settings are fastest depends on the CPU (AVX2 only, AVX-512, VNNI: the int8
kernels differ a lot) and on what else runs on it: on an idle 2-core machine two
onnxruntime threads nearly halve a batch's time, on a busy one their spinning threads
wait for each other and one thread can be faster. So instead of constants the scorer
times the candidates on a small built-in sample (bundled demo headlines) with
``keel_service.threads.fastest``, rounds interleaved, in two steps:

1. thread counts: the cores this process may use, and 1 (at the configured batch size);
2. batch sizes: the configured one, 32 and 16 (on the chosen thread count).

Settings pin either choice: ``num_threads`` (``KEEL_FM_NUM_THREADS``) and
``encoder_batch_size``; ``tune_encoder=false`` turns the measurement off (the library's
default threads, ``batch_size`` texts per encoder pass). The choice is logged, shown in
``/healthz`` (``model.encoder``) and exported as ``finance_scorer_encoder_setting``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from finance_monitor.scoring import ScoringModel

log = logging.getLogger(__name__)

#: Texts per timed sample, timed rounds per candidate, and the wall-clock budget after
#: which no new round starts (at least one always runs).
SAMPLE_TEXTS = 64
ROUNDS = 2
BUDGET_S = 0.3
#: A candidate replaces the default (the first) only when this much faster.
MARGIN = 0.05
#: Batch sizes tried besides the configured one (only those below it).
BATCH_CANDIDATES = (32, 16)

ENCODER_SETTING = Gauge(
    "finance_scorer_encoder_setting",
    "The scorer encoder's settings in use (threads: onnxruntime intra-op threads, 0 for "
    "the library default; batch_size: texts per encoder pass)",
    ["setting"],
)


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder settings in use and how they were chosen.

    Attributes:
        threads: intra-op threads (None: the library's default, one per core).
        batch_size: texts per encoder pass.
        how: ``measured``, ``pinned`` (both set by settings) or ``off`` (tuning off).
        ms_per_sample: ``"threads=N"`` / ``"batch=B"`` -> best timed round, in ms.
        sample_texts: texts per timed sample.
        elapsed_s: seconds the measurement took (warm-ups included).
    """

    threads: int | None
    batch_size: int
    how: str
    ms_per_sample: dict[str, float] = field(default_factory=dict)
    sample_texts: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``/healthz`` model block)."""
        return {
            "threads": self.threads,
            "batch_size": self.batch_size,
            "how": self.how,
            "ms_per_sample": self.ms_per_sample,
            "sample_texts": self.sample_texts,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def sample_texts(count: int = SAMPLE_TEXTS) -> list[str]:
    """``count`` bundled demo headlines spread over the file (short and long ones)."""
    from finance_monitor.model_prep import load_demo_headlines

    texts = [str(h["text"]) for h in load_demo_headlines() if h.get("text")]
    if not texts:
        return []
    step = max(1, len(texts) // count)
    return texts[::step][:count]


def encoder_of(model: ScoringModel) -> Any:
    """The transformer predictor of a scoring model: the cascade's fallback when the
    static tier serves (the tier itself has no threads or batches to tune, and timing
    through the cascade would count the sample in its routing metrics)."""
    return getattr(model.predictor, "fallback", model.predictor)


def _batch_candidates(configured: int) -> list[int]:
    return list(dict.fromkeys([configured, *(b for b in BATCH_CANDIDATES if b < configured)]))


def choose_encoder(
    load: Callable[[int | None, int], ScoringModel],
    *,
    cores: int,
    num_threads: int | None,
    batch_size: int,
    encoder_batch_size: int | None,
    texts: Sequence[str],
    tune: bool = True,
    rounds: int = ROUNDS,
    budget_s: float = BUDGET_S,
) -> tuple[ScoringModel, EncoderChoice]:
    """Load the scoring model with the thread count and batch size measured fastest.

    Args:
        load: ``(threads, batch_size) -> ScoringModel`` (threads None: library default).
        cores: cores this process may use (the multi-thread candidate).
        num_threads: the pinned thread count, or None to measure.
        batch_size: the configured texts per encoder pass (the largest candidate).
        encoder_batch_size: the pinned texts per encoder pass, or None to measure.
        texts: the timing sample.
        tune: False: no measurement (``num_threads`` as given, ``batch_size``).
        rounds: timed rounds per candidate.
        budget_s: no new round once this much time has passed (per step).

    Returns:
        The loaded model (its predictor set to the chosen batch size) and the choice.
    """
    from keel_service.threads import fastest

    batch = encoder_batch_size or batch_size
    if not tune or (num_threads is not None and encoder_batch_size is not None):
        choice = EncoderChoice(num_threads, batch, "off" if not tune else "pinned")
        return load(num_threads, batch), choice
    sample = list(texts)
    if not sample:
        raise ValueError("choose_encoder needs a non-empty sample of texts")
    counts = [num_threads] if num_threads is not None else list(dict.fromkeys([cores, 1]))
    models = {n: load(n, batch) for n in counts}

    def run(model: ScoringModel, size: int) -> Callable[[], object]:
        encoder = encoder_of(model)

        def call() -> object:
            if hasattr(encoder, "batch_size"):
                encoder.batch_size = size
            return encoder.classify_heads(sample)

        return call

    timings: dict[str, float] = {}
    elapsed = 0.0
    threads = counts[0]
    if len(counts) > 1:
        step = fastest(
            {n: run(models[n], batch) for n in counts},
            rounds=rounds,
            budget_s=budget_s,
            margin=MARGIN,
        )
        threads = step.choice
        timings.update({f"threads={n}": round(s * 1000, 1) for n, s in step.seconds.items()})
        elapsed += step.elapsed_s
    model = models[threads]
    # A predictor without a ``batch_size`` (a wrapper) keeps its own batching.
    sizes = [batch]
    if encoder_batch_size is None and hasattr(encoder_of(model), "batch_size"):
        sizes = _batch_candidates(batch)
    if len(sizes) > 1:
        step = fastest(
            {b: run(model, b) for b in sizes},
            rounds=rounds,
            budget_s=budget_s,
            warm_up=len(counts) == 1,  # the thread step has warmed this model up
            margin=MARGIN,
        )
        batch = step.choice
        timings.update({f"batch={b}": round(s * 1000, 1) for b, s in step.seconds.items()})
        elapsed += step.elapsed_s
    if hasattr(encoder_of(model), "batch_size"):
        encoder_of(model).batch_size = batch
    choice = EncoderChoice(threads, batch, "measured", timings, len(sample), elapsed)
    log.info(
        "scorer encoder: %s threads, batch %d (measured in %.2f s on %d texts: %s)",
        threads,
        batch,
        elapsed,
        len(sample),
        ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()) or "nothing to compare",
    )
    return model, choice


def export_choice(choice: EncoderChoice) -> None:
    """Set ``finance_scorer_encoder_setting`` from the choice."""
    ENCODER_SETTING.labels("threads").set(choice.threads or 0)
    ENCODER_SETTING.labels("batch_size").set(choice.batch_size)
