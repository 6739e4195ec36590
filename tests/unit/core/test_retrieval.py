"""BM25 scoring, RRF fusion order and the ``HybridRetriever`` lifecycle."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from keel import ArtifactError, ConfigError, IndexNotBuiltError
from keel.inference import FakePredictor
from keel.retrieval import BM25Index, HybridRetriever, reciprocal_rank_fusion, tokenize

DOCS = {
    "pw": "How to reset your password from the login page",
    "card": "Your new card arrives within five working days",
    "refund": "Refunds are paid back to the original card within ten days",
    "fx": "We use the interbank exchange rate for currency conversion",
}


class CountingEmbedder:
    """Wraps the fake predictor and records every text it embeds."""

    def __init__(self) -> None:
        self.inner = FakePredictor(dim=48)
        self.seen: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.embed(texts)


def test_bm25_matches_the_formula_by_hand() -> None:
    index = BM25Index(k1=1.5, b=0.75)
    index.add(["a", "b", "c"], ["apple banana apple", "banana cherry", "cherry date elder fig"])
    hits = index.search("apple", k=3)
    assert [h.id for h in hits] == ["a"]
    lengths = [3, 2, 4]
    avg = sum(lengths) / 3
    idf = math.log1p((3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / avg))
    assert hits[0].score == pytest.approx(expected, rel=1e-5)
    assert next(h.id for h in index.search("banana cherry", k=3)) == "b"


def test_bm25_delete_and_save_load(tmp_path: Path) -> None:
    index = BM25Index()
    index.add(list(DOCS), list(DOCS.values()))
    assert index.search("card", k=5)[0].id in {"card", "refund"}
    index.delete(["card", "refund"])
    assert index.search("card", k=5) == []
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert len(loaded) == 2 and loaded.search("password", k=1)[0].id == "pw"


def test_tokenize_drops_stop_words_and_case() -> None:
    assert tokenize("Where IS my Card?") == ["card"]


def test_rrf_ranks_documents_found_by_both_signals_first() -> None:
    fused = reciprocal_rank_fusion([["x", "both", "y"], ["both", "z"]], rrf_k=60)
    assert [doc for doc, _ in fused] == ["both", "x", "z", "y"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_hybrid_search_fuses_vector_and_keyword_rankings() -> None:
    retriever = HybridRetriever(FakePredictor(dim=48), mode="hybrid")
    retriever.upsert(list(DOCS), list(DOCS.values()), [{"topic": k} for k in DOCS])
    query = "reset password"
    vector_ids = [h.id for h in retriever.search(query, k=4, mode="vector")]
    bm25_ids = [h.id for h in retriever.search(query, k=4, mode="bm25")]
    expected = [doc for doc, _ in reciprocal_rank_fusion([vector_ids, bm25_ids])][:3]
    hits = retriever.search(query, k=3)
    assert [h.id for h in hits] == expected
    assert hits[0].id == "pw" and hits[0].text == DOCS["pw"] and hits[0].metadata == {"topic": "pw"}


def test_upsert_re_embeds_only_changed_texts() -> None:
    embedder = CountingEmbedder()
    retriever = HybridRetriever(embedder)
    assert retriever.upsert(list(DOCS), list(DOCS.values())) == 4
    embedder.seen.clear()
    changed = dict(DOCS, card="Cards are delivered by courier in two days")
    assert retriever.upsert(list(changed), list(changed.values()), [{"v": 2}] * 4) == 1
    assert embedder.seen == [changed["card"]]
    assert retriever.get("pw").metadata == {"v": 2}
    assert retriever.search("courier delivered", k=1, mode="bm25")[0].id == "card"


def test_delete_and_save_load_round_trip(tmp_path: Path) -> None:
    retriever = HybridRetriever(FakePredictor(dim=48))
    retriever.upsert(list(DOCS), list(DOCS.values()), [{"n": i} for i in range(4)])
    assert retriever.delete(["fx", "missing"]) == 1
    assert all(h.id != "fx" for h in retriever.search("exchange rate currency", k=4))
    before = retriever.search("card refund", k=3)
    retriever.save(tmp_path)
    loaded = HybridRetriever.load(tmp_path, FakePredictor(dim=48))
    assert len(loaded) == 3
    assert loaded.search("card refund", k=3) == before
    with pytest.raises(ArtifactError, match="dim"):
        HybridRetriever.load(tmp_path, FakePredictor(dim=16))


def test_retriever_errors_name_the_problem() -> None:
    retriever = HybridRetriever(FakePredictor(dim=8))
    with pytest.raises(IndexNotBuiltError):
        retriever.search("anything")
    with pytest.raises(ConfigError, match="texts"):
        retriever.upsert(["a"], [""])
    with pytest.raises(ConfigError, match="mode"):
        HybridRetriever(FakePredictor(dim=8), mode="magic")


def test_concurrent_upserts_and_searches_stay_consistent() -> None:
    import threading

    retriever = HybridRetriever(FakePredictor(dim=16))
    retriever.upsert(["seed"], ["card refund password"])
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            for i in range(start, start + 50):
                retriever.upsert([f"doc-{i}"], [f"document {i} about cards and refunds"])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                assert retriever.search("refund card", k=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 50,)) for n in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(retriever) == 151
    assert len(retriever.search("document 7", k=200, mode="vector")) == 151
