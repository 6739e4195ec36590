"""``load_predictor_lazily``: ``dim`` from the metadata, weights on first real use."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from keel import ArtifactError, ModelNotFoundError
from keel.inference import (
    FakePredictor,
    LazyPredictor,
    Predictor,
    load_predictor,
    load_predictor_lazily,
    peek_dim,
)
from keel.retrieval import HybridRetriever
from tests.unit.core._serve_fixtures import build_classifier_artifact


class _CountingLoad:
    def __init__(self, model: Predictor) -> None:
        self.model = model
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> Predictor:
        with self.lock:
            self.calls += 1
        return self.model


def test_dim_needs_no_load_and_first_use_loads_once() -> None:
    load = _CountingLoad(FakePredictor(["a", "b"], dim=16))
    lazy = LazyPredictor(load, 16, "fake")
    assert lazy.dim == 16 and not lazy.loaded and load.calls == 0

    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(lazy.embed(["hello there"])))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert load.calls == 1 and lazy.loaded
    assert len(results) == 8 and all(r.shape == (1, 16) for r in results)
    assert lazy.labels == ["a", "b"] and lazy.predict_labels(["x"])[0] in {"a", "b"}
    assert lazy.variant == "fake"  # beyond the protocol: the real model's attribute


def test_a_model_of_another_size_than_declared_is_refused() -> None:
    lazy = LazyPredictor(lambda: FakePredictor(dim=8), 16, "some-model")
    with pytest.raises(ArtifactError, match=r"some-model.*8-dim.*said 16"):
        lazy.embed(["text"])
    assert not lazy.loaded


def test_opening_a_saved_index_loads_nothing(tmp_path: Path) -> None:
    # What ``prepare`` on a cached state does: open the index, find nothing to embed.
    real = FakePredictor(dim=16)
    retriever = HybridRetriever(real, kind="flat", mode="hybrid")
    texts = ["reset my pin", "refund a double charge"]
    assert retriever.upsert(["d1", "d2"], texts) == 2
    retriever.save(tmp_path / "index")

    load = _CountingLoad(real)
    reopened = HybridRetriever.load(tmp_path / "index", LazyPredictor(load, 16, "fake"))
    assert reopened.upsert(["d1", "d2"], texts) == 0  # unchanged: nothing to embed
    assert load.calls == 0
    assert reopened.search("refund", 1)[0].id == "d2"  # a search embeds: now it loads
    assert load.calls == 1


@pytest.mark.parametrize("which", ["artifact", "packaged"])
def test_peek_dim_matches_the_loaded_model(
    which: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model: str | Path = "minilm"
    if which == "artifact":
        model = build_classifier_artifact(tmp_path_factory.mktemp("lazy") / "artifact")
    lazy = load_predictor_lazily(model)
    assert isinstance(lazy, LazyPredictor) and not lazy.loaded
    assert lazy.dim == peek_dim(model) == load_predictor(model).dim == 384
    assert lazy.embed(["where is my card"]).shape == (1, 384)


def test_unclear_metadata_loads_at_once_and_missing_folders_fail_at_once(
    tmp_path: Path,
) -> None:
    cross = tmp_path / "cross"
    cross.mkdir()
    (cross / "keel.json").write_text(json.dumps({"task": "cross_encoder"}))
    assert peek_dim(cross) is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert peek_dim(broken) is None
    with pytest.raises(ModelNotFoundError):
        load_predictor_lazily(tmp_path / "missing")
