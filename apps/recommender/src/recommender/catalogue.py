"""The in-memory catalogue: items, cached embeddings and the FAISS index, kept in step
with SQLite.

Requests read an immutable :class:`CatalogueSnapshot`; admin changes build a new snapshot
and swap it in, so scoring never sees a half-updated catalogue and needs no lock.
"""

from __future__ import annotations

import fcntl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.datasets import Item
from recommender.errors import ArtifactMismatchError, DuplicateItemError
from recommender.storage import CatalogueStore

if TYPE_CHECKING:
    from keel.inference import Predictor
    from keel.retrieval import Hit, VectorIndex


def duplicate_ids(item_ids: list[str]) -> list[str]:
    """Ids that occur more than once in ``item_ids`` (first-seen order)."""
    return [i for i, n in Counter(item_ids).items() if n > 1]


@contextmanager
def index_file_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive lock on the saved index, across processes sharing the state dir.

    FAISS writes its file in place, so without it a reader in another process could load a
    half-written index.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CatalogueSnapshot:
    """An immutable view of the catalogue.

    Attributes:
        items: items by catalogue row.
        rows: item id -> row.
        vectors: ``[n, d]`` L2-normalised embeddings.
        categories: category set per row.
        created_at: ``[n]`` creation time (NaN = unknown).
    """

    items: tuple[Item, ...]
    rows: dict[str, int]
    vectors: np.ndarray
    categories: tuple[frozenset[str], ...]
    created_at: np.ndarray

    @classmethod
    def build(cls, items: list[Item], vectors: np.ndarray) -> CatalogueSnapshot:
        """Snapshot of ``items`` with their ``[n, d]`` vectors."""
        return cls(
            items=tuple(items),
            rows={it.id: r for r, it in enumerate(items)},
            vectors=np.ascontiguousarray(vectors, dtype=np.float32),
            categories=tuple(frozenset(it.categories) for it in items),
            created_at=np.array(
                [np.nan if it.created_at is None else it.created_at for it in items],
                dtype=np.float64,
            ),
        )

    def __len__(self) -> int:
        return len(self.items)

    def row_of(self, item_ids: list[str]) -> np.ndarray:
        """Rows of ``item_ids`` (-1 for ids not in the catalogue)."""
        get = self.rows.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))


def encoder_tag(model_dir: Path) -> str:
    """Identity of the encoder that made a vector (its folder's manifest fingerprint)."""
    stamp = model_dir / "keel.json"
    return f"{model_dir.name}:{stamp.stat().st_mtime_ns if stamp.exists() else 0}"


class Catalogue:
    """Catalogue items + embeddings in SQLite, a snapshot in memory and a FAISS index.

    Args:
        store: the SQLite item store.
        predictor: the bi-encoder used for new or changed item texts.
        encoder: tag of ``predictor`` (vectors from another encoder are recomputed).
        index_dir: where the FAISS index is persisted.
    """

    def __init__(
        self, store: CatalogueStore, predictor: Predictor, encoder: str, index_dir: Path
    ) -> None:
        self.store = store
        self.predictor = predictor
        self.encoder = encoder
        self.index_dir = index_dir
        self._write_lock = threading.Lock()
        # FAISS indexes are not safe to search while they are being changed.
        self._index_lock = threading.Lock()
        self.snapshot = CatalogueSnapshot.build([], np.zeros((0, predictor.dim), dtype=np.float32))
        self.index: VectorIndex | None = None

    def load(self) -> int:
        """Load items from SQLite, re-embed the ones made by another encoder, load or
        rebuild the index. Returns how many items were re-embedded.

        Safe to call again while serving (a reload): the new snapshot and index are built
        aside and swapped in together.
        """
        with self._write_lock:
            return self._load()

    def _load(self) -> int:
        items, encoders, vectors = self.store.load_all()
        stale = [
            i
            for i, (enc, vec) in enumerate(zip(encoders, vectors, strict=True))
            if enc != self.encoder or vec is None or vec.shape[0] != self.predictor.dim
        ]
        if stale:
            fresh = self._embed([items[i] for i in stale])
            for j, i in enumerate(stale):
                vectors[i] = fresh[j]
            self.store.upsert([items[i] for i in stale], fresh, self.encoder)
        dim = self.predictor.dim
        matrix = np.vstack(vectors) if items else np.zeros((0, dim), dtype=np.float32)
        snapshot = CatalogueSnapshot.build(items, matrix)
        index = self._load_or_build_index(snapshot, rebuild=bool(stale))
        with self._index_lock:
            self.snapshot = snapshot
            self.index = index
        return len(stale)

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        """Nearest catalogue items to one ``[d]`` vector (empty when no index is loaded)."""
        with self._index_lock:
            if self.index is None or len(self.index) == 0:  # an empty FAISS index raises
                return []
            return self.index.search(vector[None, :].astype(np.float32), k=k)[0]

    def _embed(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.predictor.dim), dtype=np.float32)
        return np.asarray(self.predictor.embed([it.document for it in items]), dtype=np.float32)

    def _load_or_build_index(self, snap: CatalogueSnapshot, rebuild: bool) -> VectorIndex:
        from keel import KeelError
        from keel.retrieval import VectorIndex

        with index_file_lock(self.index_dir):
            if not rebuild:
                try:
                    index = VectorIndex.load(self.index_dir)
                    if len(index) == len(snap) and set(index.ids) == set(snap.rows):
                        return index
                except KeelError:  # missing, corrupt or stale: rebuilt from stored vectors
                    pass
            index = VectorIndex(self.predictor.dim, kind="flat", metric="ip")
            if len(snap):
                index.add([it.id for it in snap.items], snap.vectors)
            index.save(self.index_dir)
            return index

    def upsert(self, items: list[Item]) -> tuple[int, int]:
        """Insert or update items; only new or changed documents are embedded.

        Returns:
            ``(inserted, updated)`` counts.

        Raises:
            DuplicateItemError: an id occurs more than once in ``items``.
        """
        dupes = duplicate_ids([it.id for it in items])
        if dupes:
            raise DuplicateItemError("items", dupes)
        with self._write_lock:
            snap = self.snapshot
            changed = [
                it
                for it in items
                if it.id not in snap.rows or snap.items[snap.rows[it.id]].document != it.document
            ]
            fresh = dict(zip([it.id for it in changed], self._embed(changed), strict=True))
            vectors = (
                np.vstack(
                    [
                        fresh[it.id] if it.id in fresh else snap.vectors[snap.rows[it.id]]
                        for it in items
                    ]
                )
                if items
                else np.zeros((0, self.predictor.dim), dtype=np.float32)
            )
            self.store.upsert(items, vectors, self.encoder)
            updates = {it.id: (it, vectors[k]) for k, it in enumerate(items)}
            new_items: list[Item] = []
            new_vecs: list[np.ndarray] = []
            for r, old in enumerate(snap.items):
                item, vec = updates.pop(old.id, (old, snap.vectors[r]))
                new_items.append(item)
                new_vecs.append(vec)
            inserted = len(updates)
            for item, vec in updates.values():
                new_items.append(item)
                new_vecs.append(vec)
            matrix = (
                np.vstack(new_vecs) if new_vecs else np.zeros((0, self.predictor.dim), np.float32)
            )
            snapshot = CatalogueSnapshot.build(new_items, matrix)
            with self._index_lock:
                self.snapshot = snapshot
                self._update_index([it.id for it in items], vectors)
            return inserted, len(items) - inserted

    def delete(self, item_ids: list[str]) -> int:
        """Delete items; returns how many existed."""
        with self._write_lock:
            removed = self.store.delete(item_ids)
            gone = set(item_ids)
            snap = self.snapshot
            keep = [r for r, it in enumerate(snap.items) if it.id not in gone]
            snapshot = CatalogueSnapshot.build([snap.items[r] for r in keep], snap.vectors[keep])
            with self._index_lock:
                self.snapshot = snapshot
                present = [i for i in item_ids if i in snap.rows]
                if self.index is not None and present:
                    self.index.delete(present)
                    with index_file_lock(self.index_dir):
                        self.index.save(self.index_dir)
            return removed

    def _update_index(self, ids: list[str], vectors: np.ndarray) -> None:
        if self.index is None:
            return
        present = [i for i in ids if i in self.index]
        if present:
            self.index.delete(present)
        self.index.add(ids, vectors)
        with index_file_lock(self.index_dir):
            self.index.save(self.index_dir)

    def check_dim(self, dim: int) -> None:
        """Raise if stored vectors do not match the encoder dimension."""
        if self.snapshot.vectors.shape[1] != dim:
            raise ArtifactMismatchError(
                f"catalogue vectors have dim {self.snapshot.vectors.shape[1]}, encoder {dim}"
            )
