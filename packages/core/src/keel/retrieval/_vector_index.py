"""FAISS vector index with string ids, metadata beside the vectors, delete and persistence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ConfigError, IndexNotBuiltError
from keel.retrieval._types import Hit, UnknownIdError

INDEX_FILE = "vectors.faiss"
STATE_FILE = "vectors.json"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        raise ImportError("VectorIndex needs FAISS: pip install 'faiss-cpu>=1.8,<2'") from exc
    return faiss


class IndexKind(StrEnum):
    """Search structure: exact (``flat``) or approximate (``ivf``, ``hnsw``)."""

    FLAT = "flat"
    IVF = "ivf"
    HNSW = "hnsw"


class Metric(StrEnum):
    """``ip`` = inner product (cosine for normalised vectors); ``l2`` = Euclidean distance."""

    IP = "ip"
    L2 = "l2"


class VectorIndex:
    """Vectors with string ids and per-id metadata, searched with FAISS.

    ``flat`` is exact. ``ivf`` trains its coarse quantizer on the first ``add`` (needs
    at least ``nlist`` vectors; ``nlist`` defaults to about 4·sqrt(n)) and probes
    ``nprobe`` lists. ``hnsw`` is a graph index (``hnsw_m`` links, ``ef_search``); it
    cannot remove vectors, so deleted ids are hidden at search time and the graph is
    rebuilt once a quarter of it is deleted. Adding an existing id replaces it.

    Scores: inner product for ``ip``; negated squared distance for ``l2`` (higher is
    better for both).
    """

    def __init__(
        self,
        dim: int,
        kind: str | IndexKind = "flat",
        metric: str | Metric = "ip",
        *,
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
    ) -> None:
        if dim < 1:
            raise ConfigError("dim", dim, "must be >= 1")
        try:
            self.kind = IndexKind(kind)
        except ValueError:
            raise ConfigError("kind", kind, f"use one of {[k.value for k in IndexKind]}") from None
        try:
            self.metric = Metric(metric)
        except ValueError:
            raise ConfigError("metric", metric, "use 'ip' or 'l2'") from None
        if nlist is not None and nlist < 1:
            raise ConfigError("nlist", nlist, "must be >= 1")
        for name, value in (
            ("nprobe", nprobe),
            ("hnsw_m", hnsw_m),
            ("ef_search", ef_search),
            ("ef_construction", ef_construction),
        ):
            if value < 1:
                raise ConfigError(name, value, "must be >= 1")
        self.dim = dim
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._index: Any = None
        self._id_to_key: dict[str, int] = {}
        self._key_to_id: dict[int, str] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._tombstones: set[int] = set()
        self._next_key = 0

    # -- public API ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._id_to_key)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._id_to_key

    @property
    def ids(self) -> list[str]:
        return list(self._id_to_key)

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Add (or replace) vectors under ``ids``, with optional metadata dicts.

        Raises:
            ConfigError: shapes or lengths disagree, duplicate ids in one call, or
                non-finite values.
        """
        ids = [str(i) for i in ids]
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ConfigError("vectors", matrix.shape, f"expected shape [n, {self.dim}]")
        if matrix.shape[0] != len(ids):
            raise ConfigError("ids", len(ids), f"got {matrix.shape[0]} vectors for {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise ConfigError("ids", ids[:5], "contains duplicates")
        if metadata is not None and len(metadata) != len(ids):
            raise ConfigError("metadata", len(metadata), f"expected {len(ids)} dicts")
        if not np.isfinite(matrix).all():
            raise ConfigError("vectors", "non-finite", "contain NaN or infinity")
        if not ids:
            return
        existing = [i for i in ids if i in self._id_to_key]
        if existing:
            self.delete(existing)
        if self._index is None:
            self._index = self._new_index(matrix)
        keys = np.arange(self._next_key, self._next_key + len(ids), dtype=np.int64)
        self._next_key += len(ids)
        self._index.add_with_ids(matrix, keys)
        for doc_id, key, meta in zip(ids, keys.tolist(), metadata or [{}] * len(ids), strict=True):
            self._id_to_key[doc_id] = key
            self._key_to_id[key] = doc_id
            self._metadata[doc_id] = dict(meta)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        keys = [self._id_to_key.pop(str(i)) for i in ids if str(i) in self._id_to_key]
        for key in keys:
            doc_id = self._key_to_id.pop(key)
            self._metadata.pop(doc_id, None)
        if not keys:
            return 0
        if self.kind is IndexKind.HNSW:
            self._tombstones.update(keys)
            if len(self._tombstones) > 0.25 * max(1, self._index.ntotal):
                self._rebuild_hnsw()
        else:
            self._index.remove_ids(np.asarray(keys, dtype=np.int64))
        return len(keys)

    def search(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """The ``k`` best hits of each query vector (fewer when the index is smaller).

        Raises:
            IndexNotBuiltError: nothing was added yet.
            ConfigError: bad query shape or ``k``.
        """
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        queries = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ConfigError("vectors", queries.shape, f"expected shape [n, {self.dim}]")
        if self._index is None or not self._id_to_key:
            raise IndexNotBuiltError("the vector index is empty: add vectors before searching")
        fetch = min(k + len(self._tombstones), self._index.ntotal)
        scores, keys = self._index.search(queries, fetch)
        if self.metric is Metric.L2:
            scores = -scores
        results: list[list[Hit]] = []
        for row_scores, row_keys in zip(scores, keys, strict=True):
            hits: list[Hit] = []
            for score, key in zip(row_scores.tolist(), row_keys.tolist(), strict=True):
                if key < 0 or key in self._tombstones:
                    continue
                doc_id = self._key_to_id[key]
                hits.append(Hit(id=doc_id, score=float(score), metadata=self._metadata[doc_id]))
                if len(hits) == k:
                    break
            results.append(hits)
        return results

    def get_metadata(self, doc_id: str) -> dict[str, Any]:
        """Metadata stored with ``doc_id``.

        Raises:
            UnknownIdError: the id is not in the index.
        """
        if doc_id not in self._metadata:
            raise UnknownIdError(f"id {doc_id!r} is not in the index")
        return self._metadata[doc_id]

    def set_metadata(self, doc_id: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of ``doc_id`` without touching its vector."""
        if doc_id not in self._metadata:
            raise UnknownIdError(f"id {doc_id!r} is not in the index")
        self._metadata[doc_id] = dict(metadata)

    def get_vector(self, doc_id: str) -> np.ndarray:
        """The stored vector of ``doc_id`` (IVF: as stored, exact for flat lists)."""
        if doc_id not in self._id_to_key:
            raise UnknownIdError(f"id {doc_id!r} is not in the index")
        return np.asarray(self._index.reconstruct(self._id_to_key[doc_id]), dtype=np.float32)

    def save(self, directory: str | Path) -> Path:
        """Write ``vectors.faiss`` + ``vectors.json`` (ids, metadata, settings) to ``directory``."""
        faiss = _faiss()
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            faiss.write_index(self._index, str(folder / INDEX_FILE))
        state = {
            "format": 1,
            "dim": self.dim,
            "kind": self.kind.value,
            "metric": self.metric.value,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "next_key": self._next_key,
            "tombstones": sorted(self._tombstones),
            "ids": list(self._id_to_key.items()),
            "metadata": self._metadata,
        }
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(folder / STATE_FILE)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        """Read an index written by ``save``.

        Raises:
            IndexNotBuiltError: the folder holds no saved index.
            ArtifactError: the files are corrupt.
        """
        folder = Path(directory)
        state_path = folder / STATE_FILE
        if not state_path.is_file():
            raise IndexNotBuiltError(f"{folder}: no saved vector index ({STATE_FILE} missing)")
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            index = cls(
                int(state["dim"]),
                state["kind"],
                state["metric"],
                nlist=state.get("nlist"),
                nprobe=int(state.get("nprobe", 16)),
                hnsw_m=int(state.get("hnsw_m", 32)),
                ef_construction=int(state.get("ef_construction", 80)),
                ef_search=int(state.get("ef_search", 128)),
            )
            index._next_key = int(state["next_key"])
            index._tombstones = set(state.get("tombstones", []))
            index._id_to_key = {str(i): int(k) for i, k in state["ids"]}
            index._key_to_id = {k: i for i, k in index._id_to_key.items()}
            index._metadata = {str(i): dict(m) for i, m in state["metadata"].items()}
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{state_path}: corrupt index state: {exc}") from exc
        if (folder / INDEX_FILE).is_file():
            index._index = _faiss().read_index(str(folder / INDEX_FILE))
            index._apply_search_params()
        elif index._id_to_key:
            raise ArtifactError(f"{folder}: {INDEX_FILE} is missing")
        return index

    # -- internals -----------------------------------------------------------------------
    def _faiss_metric(self) -> int:
        faiss = _faiss()
        return int(faiss.METRIC_INNER_PRODUCT if self.metric is Metric.IP else faiss.METRIC_L2)

    def _new_index(self, first_batch: np.ndarray) -> Any:
        faiss = _faiss()
        metric = self._faiss_metric()
        if self.kind is IndexKind.FLAT:
            base = (
                faiss.IndexFlatIP(self.dim)
                if self.metric is Metric.IP
                else faiss.IndexFlatL2(self.dim)
            )
            return faiss.IndexIDMap2(base)
        if self.kind is IndexKind.HNSW:
            base = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, metric)
            base.hnsw.efConstruction = self.ef_construction
            base.hnsw.efSearch = self.ef_search
            return faiss.IndexIDMap2(base)
        n = first_batch.shape[0]
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
        if n < nlist:
            raise ConfigError(
                "nlist",
                nlist,
                f"an IVF index needs at least nlist={nlist} vectors in its first add",
            )
        self.nlist = nlist
        quantizer = (
            faiss.IndexFlatIP(self.dim) if self.metric is Metric.IP else faiss.IndexFlatL2(self.dim)
        )
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, metric)
        ivf.train(first_batch)
        ivf.nprobe = self.nprobe
        # IVF takes our ids natively (IndexIDMap cannot remove from IVF); the hash-table
        # direct map lets ``reconstruct`` find a vector by id.
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return ivf

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        if self.kind is IndexKind.IVF:
            faiss.extract_index_ivf(self._index).nprobe = self.nprobe
        elif self.kind is IndexKind.HNSW:
            faiss.downcast_index(self._index.index).hnsw.efSearch = self.ef_search

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Trade speed for recall after building (IVF ``nprobe``, HNSW ``ef_search``)."""
        if nprobe is not None:
            if nprobe < 1:
                raise ConfigError("nprobe", nprobe, "must be >= 1")
            self.nprobe = nprobe
        if ef_search is not None:
            if ef_search < 1:
                raise ConfigError("ef_search", ef_search, "must be >= 1")
            self.ef_search = ef_search
        if self._index is not None:
            self._apply_search_params()

    def _rebuild_hnsw(self) -> None:
        live = sorted(self._key_to_id)
        vectors = np.stack([self._index.reconstruct(key) for key in live]) if live else None
        self._tombstones.clear()
        self._index = None
        if vectors is not None:
            self._index = self._new_index(vectors)
            self._index.add_with_ids(vectors, np.asarray(live, dtype=np.int64))
