"""The in-memory catalogue: items, cached embeddings and the FAISS index, kept in step
with the database.

Requests read an immutable :class:`CatalogueSnapshot`; admin changes build a new snapshot
and swap it in, so scoring never sees a half-updated catalogue and needs no lock. Changes
made by other processes (worker processes, or replicas on one PostgreSQL) are applied by
:meth:`Catalogue.sync`, which asks the store for everything after the catalogue version
this process has applied.
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
from recommender.storage import CatalogueStore, StoredItem

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
    """Identity of the encoder that made a vector: its folder's name and the mtime of its
    metadata file (``keel.json``, or ``static_tier.json`` for a static table)."""
    stamp = model_dir / "keel.json"
    if not stamp.exists() and (model_dir / "static_tier.json").exists():
        stamp = model_dir / "static_tier.json"
    return f"{model_dir.name}:{stamp.stat().st_mtime_ns if stamp.exists() else 0}"


class Catalogue:
    """Catalogue items + embeddings in the database, a snapshot in memory and a FAISS index.

    Args:
        store: the item store.
        predictor: the bi-encoder used for new or changed item texts.
        encoder: tag of ``predictor`` (vectors from another encoder are recomputed).
        index_dir: where the FAISS index is persisted.

    Attributes:
        version: the database catalogue version this process has applied.
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
        self.version = 0

    def load(self) -> int:
        """Load items from the database, re-embed the ones made by another encoder, load or
        rebuild the index. Returns how many items were re-embedded.

        Safe to call again while serving (a reload): the new snapshot and index are built
        aside and swapped in together.
        """
        with self._write_lock:
            return self._load()

    def _load(self) -> int:
        version, stored = self.store.load_all()
        items = [s.item for s in stored]
        vectors, stale = self._vectors_for(stored)
        if stale:
            # cached for the next start (no new catalogue version: content is unchanged)
            self.store.set_vectors([items[i].id for i in stale], vectors[stale], self.encoder)
        snapshot = CatalogueSnapshot.build(items, vectors)
        index = self._load_or_build_index(snapshot, rebuild=bool(stale))
        with self._index_lock:
            self.snapshot = snapshot
            self.index = index
            self.version = version
        return len(stale)

    def _vectors_for(self, stored: list[StoredItem]) -> tuple[np.ndarray, list[int]]:
        """``[n, d]`` vectors of stored items: the stored one when this encoder made it,
        else a fresh embedding. Also returns the positions that were embedded."""
        dim = self.predictor.dim
        stale = [
            k
            for k, s in enumerate(stored)
            if s.encoder != self.encoder or s.vector is None or s.vector.shape[0] != dim
        ]
        matrix = np.zeros((len(stored), dim), dtype=np.float32)
        fresh = set(stale)
        for k, s in enumerate(stored):
            if k not in fresh and s.vector is not None:
                matrix[k] = s.vector
        if stale:
            matrix[stale] = self._embed([stored[k].item for k in stale])
        return matrix, stale

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
            version = self.store.upsert(items, vectors, self.encoder)
            inserted = self._swap_in(items, vectors, [])
            self._advance(version)
            return inserted, len(items) - inserted

    def delete(self, item_ids: list[str]) -> int:
        """Delete items; returns how many existed."""
        with self._write_lock:
            removed, version = self.store.delete(item_ids)
            self._swap_in([], np.zeros((0, self.predictor.dim), np.float32), item_ids)
            self._advance(version)
            return removed

    def sync(self) -> tuple[list[str], list[str]]:
        """Apply the catalogue changes other processes made since :attr:`version`.

        Changed items are embedded only when their stored vector comes from another
        encoder; changes this process already holds are skipped.

        Returns:
            ``(upserted ids, deleted ids)`` that changed this process's catalogue.
        """
        with self._write_lock:
            changes = self.store.changes_since(self.version)
            if changes is None:
                return [], []
            snap = self.snapshot
            stored = [
                s
                for s in changes.upserted
                if s.item.id not in snap.rows or snap.items[snap.rows[s.item.id]] != s.item
            ]
            deleted = [i for i in changes.deleted if i in snap.rows]
            vectors, _ = self._vectors_for(stored)
            if stored or deleted:
                self._swap_in([s.item for s in stored], vectors, deleted)
            self.version = changes.version
            return [s.item.id for s in stored], deleted

    def _advance(self, version: int) -> None:
        # This process's own change is the next version: nothing in between to fetch, so
        # the next sync need not read it back. Otherwise sync applies the gap (and this
        # change again, which it skips as already held).
        if version == self.version + 1:
            self.version = version

    def _swap_in(self, items: list[Item], vectors: np.ndarray, deleted: list[str]) -> int:
        """Build the next snapshot (``items`` upserted with their vectors, ``deleted``
        removed), swap it in with the index updated; returns how many items were new."""
        snap = self.snapshot
        gone = set(deleted) - {it.id for it in items}
        updates = {it.id: (it, vectors[k]) for k, it in enumerate(items)}
        new_items: list[Item] = []
        new_vecs: list[np.ndarray] = []
        for r, old in enumerate(snap.items):
            if old.id in gone:
                continue
            item, vec = updates.pop(old.id, (old, snap.vectors[r]))
            new_items.append(item)
            new_vecs.append(vec)
        inserted = len(updates)
        for item, vec in updates.values():
            new_items.append(item)
            new_vecs.append(vec)
        matrix = np.vstack(new_vecs) if new_vecs else np.zeros((0, self.predictor.dim), np.float32)
        snapshot = CatalogueSnapshot.build(new_items, matrix)
        with self._index_lock:
            self.snapshot = snapshot
            self._update_index([i for i in dict.fromkeys(deleted) if i in gone], items, vectors)
        return inserted

    def _update_index(self, removed: list[str], items: list[Item], vectors: np.ndarray) -> None:
        ids = [it.id for it in items]
        if self.index is None or not (removed or ids):
            return
        stale = [i for i in removed + ids if i in self.index]
        if stale:
            self.index.delete(stale)
        if ids:
            self.index.add(ids, vectors)
        with index_file_lock(self.index_dir):
            self.index.save(self.index_dir)

    def check_dim(self, dim: int) -> None:
        """Raise if stored vectors do not match the encoder dimension."""
        if self.snapshot.vectors.shape[1] != dim:
            raise ArtifactMismatchError(
                f"catalogue vectors have dim {self.snapshot.vectors.shape[1]}, encoder {dim}"
            )
