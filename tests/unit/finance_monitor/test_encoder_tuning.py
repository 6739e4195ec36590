"""The scorer's encoder threads and batch size, chosen by a start-up measurement."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from finance_monitor import encoder_tuning
from finance_monitor.encoder_tuning import choose_encoder, export_choice, sample_texts
from finance_monitor.scoring import ScoringModel
from keel_service import threads as keel_threads


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Predictor:
    """Costs (on the fake clock) 1 s per pass with 2 threads, 2 s with 1; batch 32 is
    0.5 s cheaper than the others."""

    def __init__(self, clock: _Clock, threads: int | None, batch_size: int) -> None:
        self.clock, self.threads, self.batch_size = clock, threads, batch_size
        self.calls = 0

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.clock.now += (1.0 if self.threads == 2 else 2.0) - (
            0.5 if self.batch_size == 32 else 0
        )
        n = len(texts)
        return {"topic": np.full((n, 1), 1.0), "sentiment": np.full((n, 1), 1.0)}


class _Unbatched:
    """A predictor wrapper without a ``batch_size`` (it batches on its own)."""

    def __init__(self) -> None:
        self.calls = 0

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.calls += 1
        n = len(texts)
        return {"topic": np.full((n, 1), 1.0), "sentiment": np.full((n, 1), 1.0)}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(keel_threads.time, "perf_counter", fake)
    return fake


def _loader(clock: _Clock, loads: list[tuple[Any, int]]) -> Any:
    def load(threads: int | None, batch: int) -> ScoringModel:
        loads.append((threads, batch))
        return ScoringModel(_Predictor(clock, threads, batch), ["Earnings"], ["neutral"])

    return load


def test_threads_then_batch_size_are_measured(clock: _Clock) -> None:
    loads: list[tuple[Any, int]] = []
    model, choice = choose_encoder(
        _loader(clock, loads),
        cores=2,
        num_threads=None,
        batch_size=256,
        encoder_batch_size=None,
        texts=["a", "b"],
    )
    assert loads == [(2, 256), (1, 256)]  # one model per thread count, the fastest kept
    assert (choice.threads, choice.batch_size, choice.how) == (2, 32, "measured")
    assert model.predictor.threads == 2  # type: ignore[attr-defined]
    assert model.predictor.batch_size == 32  # type: ignore[attr-defined]
    assert set(choice.ms_per_sample) == {
        "threads=2",
        "threads=1",
        "batch=256",
        "batch=32",
        "batch=16",
    }
    assert choice.ms_per_sample["batch=32"] == 500.0
    assert choice.as_dict()["sample_texts"] == 2
    export_choice(choice)
    gauge = encoder_tuning.ENCODER_SETTING
    assert gauge.labels("threads")._value.get() == 2
    assert gauge.labels("batch_size")._value.get() == 32


def test_pinned_threads_measure_the_batch_size_only(clock: _Clock) -> None:
    loads: list[tuple[Any, int]] = []
    _model, choice = choose_encoder(
        _loader(clock, loads),
        cores=8,
        num_threads=1,
        batch_size=64,
        encoder_batch_size=None,
        texts=["a"],
    )
    assert loads == [(1, 64)]
    assert (choice.threads, choice.batch_size) == (1, 32)
    assert set(choice.ms_per_sample) == {"batch=64", "batch=32", "batch=16"}


@pytest.mark.parametrize(
    ("tune", "threads", "batch", "how", "expected"),
    [(True, 3, 48, "pinned", (3, 48)), (False, None, None, "off", (None, 256))],
)
def test_pinned_or_off_loads_once_without_timing(
    clock: _Clock, tune: bool, threads: int | None, batch: int | None, how: str, expected: Any
) -> None:
    loads: list[tuple[Any, int]] = []
    model, choice = choose_encoder(
        _loader(clock, loads),
        cores=2,
        num_threads=threads,
        batch_size=256,
        encoder_batch_size=batch,
        texts=["a"],
        tune=tune,
    )
    assert loads == [expected]
    assert (choice.threads, choice.batch_size, choice.how) == (*expected, how)
    assert model.predictor.calls == 0  # type: ignore[attr-defined]
    assert choice.ms_per_sample == {}


def test_a_predictor_without_batch_size_keeps_its_batching(clock: _Clock) -> None:
    def load(threads: int | None, batch: int) -> ScoringModel:
        return ScoringModel(_Unbatched(), ["Earnings"], ["neutral"])

    model, choice = choose_encoder(
        load, cores=1, num_threads=None, batch_size=256, encoder_batch_size=None, texts=["a"]
    )
    assert (choice.threads, choice.batch_size) == (1, 256)
    assert model.predictor.calls == 0  # type: ignore[attr-defined]  # nothing to compare


class _Cascade:
    """The static tier's cascade: routing counted, the transformer as ``fallback``."""

    def __init__(self, fallback: _Predictor) -> None:
        self.fallback = fallback
        self.routed = 0

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.routed += len(texts)
        return self.fallback.classify_heads(texts)


def test_a_cascade_is_timed_on_its_transformer(clock: _Clock) -> None:
    def load(threads: int | None, batch: int) -> ScoringModel:
        return ScoringModel(_Cascade(_Predictor(clock, threads, batch)), ["Earnings"], ["neutral"])

    model, choice = choose_encoder(
        load, cores=2, num_threads=None, batch_size=64, encoder_batch_size=None, texts=["a"]
    )
    cascade = model.predictor
    assert (choice.threads, choice.batch_size) == (2, 32)
    assert cascade.fallback.batch_size == 32  # type: ignore[attr-defined]
    assert cascade.routed == 0  # type: ignore[attr-defined]  # no sample text in its metrics


def test_an_empty_sample_is_refused(clock: _Clock) -> None:
    with pytest.raises(ValueError, match="non-empty sample"):
        choose_encoder(
            _loader(clock, []),
            cores=2,
            num_threads=None,
            batch_size=256,
            encoder_batch_size=None,
            texts=[],
        )


def test_the_built_in_sample_is_bundled_headlines() -> None:
    texts = sample_texts()
    assert len(texts) == encoder_tuning.SAMPLE_TEXTS
    assert all(t.strip() for t in texts)
    assert len(set(texts)) > len(texts) // 2
    assert len(sample_texts(5)) == 5
