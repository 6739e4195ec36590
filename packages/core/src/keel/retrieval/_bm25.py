"""Okapi BM25 keyword index over a scipy sparse term-frequency matrix (Chinese and English)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ConfigError, IndexNotBuiltError
from keel.retrieval._types import Hit
from keel.text import search_tokens

BM25_FILE = "bm25.json"


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lower-case English words without stop words, jieba words for
    Chinese runs, punctuation dropped (see ``keel.text.search_tokens``)."""
    return search_tokens(text)


class BM25Index:
    """Keyword search with Okapi BM25 (``k1``, ``b``), with add / delete / save / load.

    Documents live in a dict; the sparse matrix and IDF are rebuilt lazily on the next
    search after a change, so a burst of updates costs one rebuild.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        if k1 < 0:
            raise ConfigError("k1", k1, "must be >= 0")
        if not 0.0 <= b <= 1.0:
            raise ConfigError("b", b, "must be in [0, 1]")
        self.k1 = k1
        self.b = b
        self._texts: dict[str, str] = {}
        self._dirty = True
        self._ids: list[str] = []
        self._vocab: dict[str, int] = {}
        self._weights: Any = None  # csc matrix [docs, terms] of BM25 term weights
        self._idf: np.ndarray = np.zeros(0, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._texts

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Add or replace documents."""
        if len(ids) != len(texts):
            raise ConfigError("texts", len(texts), f"expected {len(ids)} texts for {len(ids)} ids")
        for doc_id, text in zip(ids, texts, strict=True):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{doc_id!r}]", text, "must be a string")
            self._texts[str(doc_id)] = text
        self._dirty = True

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents; unknown ids are ignored. Returns how many were removed."""
        removed = sum(self._texts.pop(str(i), None) is not None for i in ids)
        if removed:
            self._dirty = True
        return removed

    def text(self, doc_id: str) -> str | None:
        return self._texts.get(doc_id)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` documents with the highest BM25 score (only those sharing a term).

        Raises:
            IndexNotBuiltError: the index is empty.
        """
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        if not self._texts:
            raise IndexNotBuiltError("the BM25 index is empty: add documents before searching")
        if self._dirty:
            self._rebuild()
        columns = [self._vocab[t] for t in set(tokenize(query)) if t in self._vocab]
        if not columns:
            return []
        scores = np.asarray(self._weights[:, columns].sum(axis=1)).ravel()
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        ordered = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [
            Hit(id=self._ids[i], score=float(scores[i]), text=self._texts[self._ids[i]])
            for i in ordered
        ]

    def save(self, directory: str | Path) -> Path:
        """Write the documents and parameters to ``directory/bm25.json``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"format": 1, "k1": self.k1, "b": self.b, "texts": self._texts}
        tmp = folder / (BM25_FILE + ".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(folder / BM25_FILE)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> BM25Index:
        """Read an index written by ``save``."""
        path = Path(directory) / BM25_FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"{path.parent}: no saved BM25 index ({BM25_FILE} missing)")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            index = cls(k1=float(payload["k1"]), b=float(payload["b"]))
            texts = payload["texts"]
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: corrupt BM25 index: {exc}") from exc
        index.add(list(texts), list(texts.values()))
        return index

    def _rebuild(self) -> None:
        from scipy import sparse

        self._ids = list(self._texts)
        self._vocab = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        lengths = np.zeros(len(self._ids), dtype=np.float32)
        for row, doc_id in enumerate(self._ids):
            tokens = tokenize(self._texts[doc_id])
            lengths[row] = len(tokens)
            for term, count in Counter(tokens).items():
                rows.append(row)
                cols.append(self._vocab.setdefault(term, len(self._vocab)))
                counts.append(count)
        n_docs = len(self._ids)
        tf = sparse.csr_matrix(
            (np.asarray(counts, dtype=np.float32), (rows, cols)),
            shape=(n_docs, max(1, len(self._vocab))),
        )
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=tf.shape[1]).astype(np.float32)
        self._idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg_len = float(lengths.mean()) if n_docs else 1.0
        norm = self.k1 * (1.0 - self.b + self.b * lengths / max(avg_len, 1e-9))
        # Per-entry BM25 weight: idf * tf * (k1 + 1) / (tf + norm_of_its_doc).
        data = tf.data
        doc_of_entry = np.repeat(np.arange(n_docs), np.diff(tf.indptr))
        tf.data = self._idf[tf.indices] * data * (self.k1 + 1.0) / (data + norm[doc_of_entry])
        self._weights = tf.tocsc()
        self._dirty = False
