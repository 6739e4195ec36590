"""recommender.encoder_threads: the encoder's thread count is chosen by measurement."""

from __future__ import annotations

import time

import pytest

from recommender.encoder_threads import choose_encoder_threads


class _TimedEncoder:
    """Embeds in ``seconds_per_call`` (a stand-in for an encoder with some threads)."""

    def __init__(self, seconds_per_call: float, calls: list[int], threads: int) -> None:
        self.seconds_per_call = seconds_per_call
        self.calls = calls
        self.threads = threads

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(self.threads)
        time.sleep(self.seconds_per_call)
        return [[0.0] for _ in texts]


@pytest.mark.parametrize(("faster", "expected"), [(1, 1), (2, 2)])
def test_the_faster_thread_count_is_kept(faster: int, expected: int) -> None:
    calls: list[int] = []

    def load(threads: int) -> _TimedEncoder:
        return _TimedEncoder(0.002 if threads == faster else 0.05, calls, threads)

    choice = choose_encoder_threads(load, [2, 1], ["a text"] * 4, rounds=2)
    assert choice.threads == expected
    assert set(choice.seconds) == {1, 2}
    assert choice.seconds[faster] < choice.seconds[3 - faster]
    # One warm-up call each, then rounds interleaved A B A B.
    assert calls == [2, 1, 2, 1, 2, 1]


def test_a_single_candidate_is_kept_without_loading_twice() -> None:
    loads: list[int] = []

    def load(threads: int) -> _TimedEncoder:
        loads.append(threads)
        return _TimedEncoder(0.0, [], threads)

    assert choose_encoder_threads(load, [1, 1], ["x"]).threads == 1
    assert loads == []


def test_no_thread_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        choose_encoder_threads(lambda n: None, [0], ["x"])
