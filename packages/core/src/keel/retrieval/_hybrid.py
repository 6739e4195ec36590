"""Hybrid retrieval: vector search and BM25 fused by reciprocal rank fusion (RRF)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError, ConfigError, IndexNotBuiltError
from keel.retrieval._bm25 import BM25Index
from keel.retrieval._types import Embedder, Hit, UnknownIdError, embed_documents
from keel.retrieval._vector_index import VectorIndex

MANIFEST_FILE = "retriever.json"


class SearchMode(StrEnum):
    """Which signals a ``HybridRetriever`` uses."""

    HYBRID = "hybrid"
    VECTOR = "vector"
    BM25 = "bm25"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], rrf_k: int = 60
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(id) = sum over lists of 1 / (rrf_k + rank)`` (rank from 1).

    Returns ``(id, score)`` pairs, best first; ties keep first-seen order.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


class HybridRetriever:
    """Documents (id, text, metadata) searchable by meaning, keywords or both.

    Args:
        embedder: any object with ``dim`` and ``embed(texts)`` (every ``Predictor``).
        kind: vector index kind (``flat``, ``ivf``, ``hnsw``).
        mode: ``hybrid`` (RRF of vector and BM25), ``vector`` or ``bm25``.
        rrf_k: the RRF constant (60 as in Cormack et al. 2009).
        candidates: how many hits each signal contributes before fusion (at least ``k``).
    """

    def __init__(
        self,
        embedder: Embedder,
        kind: str = "flat",
        mode: str | SearchMode = "hybrid",
        rrf_k: int = 60,
        *,
        candidates: int = 50,
        index_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            self.mode = SearchMode(mode)
        except ValueError:
            raise ConfigError("mode", mode, f"use one of {[m.value for m in SearchMode]}") from None
        if rrf_k < 1:
            raise ConfigError("rrf_k", rrf_k, "must be >= 1")
        if candidates < 1:
            raise ConfigError("candidates", candidates, "must be >= 1")
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.candidates = candidates
        self._vectors = VectorIndex(embedder.dim, kind, **(index_options or {}))
        self._bm25 = BM25Index()
        self._texts: dict[str, str] = {}
        self._digests: dict[str, str] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self.embedded_count = 0  # texts embedded so far (shows incremental upserts work)
        # Searches and updates from several threads (API workers) must not interleave.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._texts

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        """Add new documents and update changed ones; only new or changed texts are embedded.

        Returns:
            How many texts were embedded.
        """
        with self._lock:
            return self._upsert(ids, texts, metadata)

    def _upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None,
    ) -> int:
        ids = [str(i) for i in ids]
        if len(texts) != len(ids):
            raise ConfigError("texts", len(texts), f"expected {len(ids)} texts for {len(ids)} ids")
        if metadata is not None and len(metadata) != len(ids):
            raise ConfigError("metadata", len(metadata), f"expected {len(ids)} dicts")
        if len(set(ids)) != len(ids):
            raise ConfigError("ids", ids[:5], "contains duplicates")
        metas = [dict(m) for m in metadata] if metadata is not None else [None] * len(ids)
        changed: list[int] = []
        for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"texts[{i}]", text, "must be a non-empty string")
            if self._digests.get(doc_id) != _digest(text):
                changed.append(i)
        for i, doc_id in enumerate(ids):
            meta = metas[i]
            if meta is not None:
                self._metadata[doc_id] = meta
            else:
                self._metadata.setdefault(doc_id, {})
            if i not in changed and doc_id in self._vectors:
                self._vectors.set_metadata(doc_id, self._metadata[doc_id])
        if changed:
            changed_ids = [ids[i] for i in changed]
            changed_texts = [texts[i] for i in changed]
            vectors = embed_documents(self.embedder, changed_texts)
            self.embedded_count += len(changed)
            self._vectors.add(changed_ids, vectors, [self._metadata[i] for i in changed_ids])
            self._bm25.add(changed_ids, changed_texts)
            for doc_id, text in zip(changed_ids, changed_texts, strict=True):
                self._texts[doc_id] = text
                self._digests[doc_id] = _digest(text)
        return len(changed)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents; unknown ids are ignored. Returns how many were removed."""
        with self._lock:
            return self._delete([str(i) for i in ids])

    def _delete(self, ids: list[str]) -> int:
        self._vectors.delete(ids)
        self._bm25.delete(ids)
        removed = 0
        for doc_id in ids:
            if self._texts.pop(doc_id, None) is not None:
                removed += 1
            self._digests.pop(doc_id, None)
            self._metadata.pop(doc_id, None)
        return removed

    def get(self, doc_id: str) -> Hit:
        """The stored document ``doc_id`` as a ``Hit`` with score 0."""
        if doc_id not in self._texts:
            raise UnknownIdError(f"id {doc_id!r} is not in the retriever")
        return Hit(id=doc_id, score=0.0, text=self._texts[doc_id], metadata=self._metadata[doc_id])

    def search(self, query: str, k: int = 5, mode: str | SearchMode | None = None) -> list[Hit]:
        """The ``k`` best documents for ``query``.

        In ``hybrid`` mode the score is the RRF score; in ``vector`` mode the inner
        product; in ``bm25`` mode the BM25 score.

        Raises:
            IndexNotBuiltError: nothing was added yet.
            ConfigError: empty query or bad ``k``.
        """
        with self._lock:
            return self._search(query, k, mode)

    def _search(self, query: str, k: int, mode: str | SearchMode | None) -> list[Hit]:
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("query", query, "must be a non-empty string")
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        if not self._texts:
            raise IndexNotBuiltError("the retriever is empty: upsert documents before searching")
        chosen = self.mode if mode is None else SearchMode(mode)
        depth = max(k, self.candidates) if chosen is SearchMode.HYBRID else k
        vector_hits: list[Hit] = []
        keyword_hits: list[Hit] = []
        if chosen in (SearchMode.HYBRID, SearchMode.VECTOR):
            vector_hits = self._vectors.search(self.embedder.embed([query]), depth)[0]
        if chosen in (SearchMode.HYBRID, SearchMode.BM25):
            keyword_hits = self._bm25.search(query, depth)
        if chosen is SearchMode.VECTOR:
            return [self._with_text(hit.id, hit.score) for hit in vector_hits]
        if chosen is SearchMode.BM25:
            return [self._with_text(hit.id, hit.score) for hit in keyword_hits]
        fused = reciprocal_rank_fusion(
            [[h.id for h in vector_hits], [h.id for h in keyword_hits]], self.rrf_k
        )
        return [self._with_text(doc_id, score) for doc_id, score in fused[:k]]

    def save(self, directory: str | Path) -> Path:
        """Write the vector index, the BM25 index and the documents to ``directory``."""
        with self._lock:
            return self._save(Path(directory))

    def _save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self._vectors.save(folder)
        self._bm25.save(folder)
        manifest = {
            "format": 1,
            "dim": self.embedder.dim,
            "kind": self._vectors.kind.value,
            "mode": self.mode.value,
            "rrf_k": self.rrf_k,
            "candidates": self.candidates,
            "documents": {
                doc_id: {
                    "text": text,
                    "sha1": self._digests[doc_id],
                    "metadata": self._metadata[doc_id],
                }
                for doc_id, text in self._texts.items()
            },
        }
        tmp = folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(manifest), encoding="utf-8")
        tmp.replace(folder / MANIFEST_FILE)
        return folder

    @classmethod
    def load(cls, directory: str | Path, embedder: Embedder) -> HybridRetriever:
        """Read a retriever written by ``save``; ``embedder`` must give vectors of the saved size.

        Raises:
            IndexNotBuiltError: the folder holds no saved retriever.
            ArtifactError: corrupt files, or the embedder's ``dim`` differs.
        """
        folder = Path(directory)
        path = folder / MANIFEST_FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"{folder}: no saved retriever ({MANIFEST_FILE} missing)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            documents = manifest["documents"]
            dim = int(manifest["dim"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: corrupt retriever manifest: {exc}") from exc
        if dim != embedder.dim:
            raise ArtifactError(
                f"{folder}: saved with {dim}-dim vectors but the embedder gives {embedder.dim}"
            )
        retriever = cls(
            embedder,
            kind=manifest["kind"],
            mode=manifest["mode"],
            rrf_k=int(manifest["rrf_k"]),
            candidates=int(manifest.get("candidates", 50)),
        )
        retriever._vectors = VectorIndex.load(folder)
        retriever._bm25 = BM25Index.load(folder)
        for doc_id, doc in documents.items():
            retriever._texts[doc_id] = doc["text"]
            retriever._digests[doc_id] = doc["sha1"]
            retriever._metadata[doc_id] = dict(doc.get("metadata") or {})
        return retriever

    def _with_text(self, doc_id: str, score: float) -> Hit:
        return Hit(
            id=doc_id, score=score, text=self._texts[doc_id], metadata=self._metadata[doc_id]
        )
