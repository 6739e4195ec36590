"""``VectorIndex``: exact search equals brute force, ANN recall, delete, metadata, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keel import ConfigError, IndexNotBuiltError
from keel.retrieval import UnknownIdError, VectorIndex


def _clustered(n: int, dim: int = 32, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def _brute_force(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :k]


DATA = _clustered(3000)
QUERIES = _clustered(50, seed=1)
IDS = [f"doc-{i}" for i in range(len(DATA))]


def test_flat_index_returns_the_brute_force_neighbours() -> None:
    index = VectorIndex(32)
    index.add(IDS, DATA)
    hits = index.search(QUERIES, k=10)
    expected = _brute_force(DATA, QUERIES, 10)
    for row, query_hits in enumerate(hits):
        assert [h.id for h in query_hits] == [IDS[i] for i in expected[row]]
        np.testing.assert_allclose(
            [h.score for h in query_hits], (QUERIES[row] @ DATA[expected[row]].T), atol=1e-5
        )


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_reach_high_recall(kind: str) -> None:
    index = VectorIndex(32, kind, nlist=32, nprobe=8)
    index.add(IDS, DATA)
    expected = _brute_force(DATA, QUERIES, 10)
    found = index.search(QUERIES, k=10)
    recall = np.mean(
        [
            len({h.id for h in hits} & {IDS[i] for i in exp}) / 10
            for hits, exp in zip(found, expected, strict=True)
        ]
    )
    assert recall >= 0.9, f"{kind} recall@10 = {recall:.3f}"


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_delete_hides_documents_and_replacing_an_id_updates_it(kind: str) -> None:
    index = VectorIndex(32, kind, nlist=16)
    index.add(IDS[:500], DATA[:500], [{"n": i} for i in range(500)])
    top = index.search(DATA[7], k=1)[0][0]
    assert top.id == "doc-7" and top.metadata == {"n": 7}
    assert index.delete(["doc-7", "never-added"]) == 1
    assert len(index) == 499
    assert all(h.id != "doc-7" for h in index.search(DATA[7], k=20)[0])
    with pytest.raises(UnknownIdError):
        index.get_metadata("doc-7")
    index.add(["doc-8"], DATA[9:10], [{"n": "moved"}])
    assert len(index) == 499
    assert index.search(DATA[9], k=2)[0][0].metadata in ({"n": "moved"}, {"n": 9})
    assert index.get_metadata("doc-8") == {"n": "moved"}


def test_hnsw_rebuilds_after_many_deletes() -> None:
    index = VectorIndex(32, "hnsw")
    index.add(IDS[:400], DATA[:400])
    index.delete(IDS[:200])
    assert len(index) == 200
    hits = index.search(DATA[300], k=5)[0]
    assert hits[0].id == "doc-300" and len(hits) == 5
    assert all(int(h.id.split("-")[1]) >= 200 for h in hits)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    index = VectorIndex(32, kind, nlist=16)
    index.add(IDS[:600], DATA[:600], [{"i": i} for i in range(600)])
    index.delete(["doc-1"])
    before = index.search(QUERIES, k=5)
    index.save(tmp_path / kind)
    loaded = VectorIndex.load(tmp_path / kind)
    assert len(loaded) == 599 and loaded.kind.value == kind
    assert loaded.search(QUERIES, k=5) == before
    assert loaded.get_metadata("doc-5") == {"i": 5}


def test_l2_metric_orders_by_distance() -> None:
    index = VectorIndex(2, metric="l2")
    index.add(["near", "far"], np.array([[1.0, 0.0], [5.0, 0.0]], dtype=np.float32))
    hits = index.search(np.array([[0.0, 0.0]], dtype=np.float32), k=2)[0]
    assert [h.id for h in hits] == ["near", "far"] and hits[0].score == pytest.approx(-1.0)


def test_bad_input_is_rejected_with_the_field_named(tmp_path: Path) -> None:
    index = VectorIndex(4)
    with pytest.raises(IndexNotBuiltError):
        index.search(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="vectors"):
        index.add(["a"], np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="ids"):
        index.add(["a", "a"], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="vectors"):
        index.add(["a"], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(ConfigError, match="kind"):
        VectorIndex(4, kind="annoy")
    with pytest.raises(IndexNotBuiltError):
        VectorIndex.load(tmp_path)
