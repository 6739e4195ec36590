"""numpy's BLAS runs on one thread once an encoder predictor exists (keel.inference._blas)."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info

from keel.errors import ConfigError
from keel.inference import _blas


def _blas_thread_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture()
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_blas, "_done", False)


def test_limit_sets_numpy_blas_to_the_setting(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl finds)

    assert _blas_thread_counts(), "numpy's BLAS library was not found"
    monkeypatch.setenv("KEEL_BLAS_THREADS", "2")
    _blas.limit_blas_threads()
    assert set(_blas_thread_counts()) == {2}
    monkeypatch.setattr(_blas, "_done", False)
    monkeypatch.delenv("KEEL_BLAS_THREADS")
    _blas.limit_blas_threads()
    assert set(_blas_thread_counts()) == {1}


def test_limit_runs_once(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _blas.limit_blas_threads()
    monkeypatch.setenv("KEEL_BLAS_THREADS", "2")
    _blas.limit_blas_threads()  # already done: the setting is not read again
    assert set(_blas_thread_counts()) == {1}


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_bad_setting_names_the_variable(
    fresh: None, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("KEEL_BLAS_THREADS", raw)
    with pytest.raises(ConfigError, match="KEEL_BLAS_THREADS"):
        _blas.limit_blas_threads()


def test_encoder_predictor_limits_blas(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from keel.inference import EncoderPredictor

    class Zeros(EncoderPredictor):
        def _encode(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setenv("KEEL_BLAS_THREADS", "2")
    _blas.limit_blas_threads()
    monkeypatch.setattr(_blas, "_done", False)
    monkeypatch.delenv("KEEL_BLAS_THREADS")
    Zeros(dim=4, heads={}, normalize_features=False)
    assert set(_blas_thread_counts()) == {1}
