"""recommender.encoder_threads: the encoder's kernel and thread count are chosen by
measurement."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recommender.encoder_threads import choose_encoder, serving_kernels


class _TimedEncoder:
    """Embeds in ``seconds_per_call`` (a stand-in for one kernel on some threads)."""

    def __init__(
        self, seconds_per_call: float, calls: list[tuple[str, int]], pair: tuple[str, int]
    ) -> None:
        self.seconds_per_call = seconds_per_call
        self.calls = calls
        self.pair = pair

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(self.pair)
        time.sleep(self.seconds_per_call)
        return [[0.0] for _ in texts]


@pytest.mark.parametrize(
    "fastest", [("onnx-int8", 2), ("onnx-int8", 1), ("onnx-fp32", 2), ("onnx-fp32", 1)]
)
def test_the_fastest_kernel_and_thread_count_are_kept(fastest: tuple[str, int]) -> None:
    calls: list[tuple[str, int]] = []

    def load(kernel: str, threads: int) -> _TimedEncoder:
        pair = (kernel, threads)
        return _TimedEncoder(0.002 if pair == fastest else 0.05, calls, pair)

    choice = choose_encoder(load, ["onnx-int8", "onnx-fp32"], [2, 1], ["a text"] * 4, rounds=2)
    assert (choice.kernel, choice.threads) == fastest
    key = f"{fastest[0]}/{fastest[1]}"
    assert set(choice.seconds) == {"onnx-int8/2", "onnx-int8/1", "onnx-fp32/2", "onnx-fp32/1"}
    assert all(choice.seconds[key] < v for k, v in choice.seconds.items() if k != key)
    assert key.split("/")[0] in choice.reason and "4 catalogue texts" in choice.reason
    # One warm-up call each, then rounds interleaved A B C D A B C D.
    order = [("onnx-int8", 2), ("onnx-int8", 1), ("onnx-fp32", 2), ("onnx-fp32", 1)]
    assert calls == order * 3
    assert choice.as_dict()["ms_per_sample"][key] == round(choice.seconds[key] * 1000, 1)


def test_a_single_pair_is_kept_without_loading() -> None:
    loads: list[tuple[str, int]] = []

    def load(kernel: str, threads: int) -> _TimedEncoder:
        loads.append((kernel, threads))
        return _TimedEncoder(0.0, [], (kernel, threads))

    choice = choose_encoder(load, ["served"], [1, 1], ["x"])
    assert (choice.kernel, choice.threads) == ("served", 1)
    assert loads == []
    assert choice.reason == "nothing to choose between"


def test_no_kernel_or_thread_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        choose_encoder(lambda k, n: None, ["onnx-int8"], [0], ["x"])
    with pytest.raises(ValueError, match="at least one"):
        choose_encoder(lambda k, n: None, [], [1], ["x"])


def test_serving_kernels_reads_the_manifest(tmp_path: Path) -> None:
    manifest = {
        "serving_model": "prepared/v/models/serving",
        "kernels": {
            "onnx-int8": "prepared/v/models/serving",
            "onnx-fp32": "prepared/v/models/serving-fp32",
        },
    }
    for folder in ("serving", "serving-fp32"):
        (tmp_path / "prepared/v/models" / folder).mkdir(parents=True)
    kernels = serving_kernels(manifest, tmp_path)
    assert list(kernels) == ["onnx-int8", "onnx-fp32"]
    assert kernels["onnx-fp32"] == tmp_path / "prepared/v/models/serving-fp32"
    # A state prepared before the kernels were recorded serves its one model.
    older = serving_kernels({"serving_model": "prepared/v/models/serving"}, tmp_path)
    assert older == {"served": tmp_path / "prepared/v/models/serving"}


def test_a_packaged_or_uncompressed_encoder_is_the_only_kernel(tmp_path: Path) -> None:
    from recommender.prepare import serving_kernels_of

    # Not fine-tuned (a packaged name): nothing to export.
    assert serving_kernels_of("minilm", "minilm", tmp_path) == {"served": "minilm"}
    assert not (tmp_path / "serving-fp32").exists()
