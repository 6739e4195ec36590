"""The knowledge base: documents, their passages, and the retrieval index over them.

Documents are kept in ``<kb_dir>/documents.json`` (with a content hash each) and the
passages in a ``keel.retrieval`` index saved under ``<kb_dir>/index``. Re-ingesting an
unchanged file compares hashes and does no work.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from customer_service.documents import (
    ChangeReport,
    Document,
    iter_article_files,
    load_article,
    load_faq,
)
from customer_service.errors import DocumentNotFoundError
from customer_service.passages import Passage, split_passages


class SearchHit(Protocol):
    """What a retriever returns per result (``keel.retrieval.Hit`` is one)."""

    id: str
    score: float
    metadata: dict[str, Any]


class PassageRetriever(Protocol):
    """The part of ``keel.retrieval.HybridRetriever`` the knowledge base uses."""

    def upsert(self, ids: list[str], texts: list[str], metadata: list[dict[str, Any]]) -> Any: ...

    def delete(self, ids: list[str]) -> Any: ...

    def search(self, query: str, k: int = 5) -> Sequence[SearchHit]: ...

    def save(self, directory: Path) -> Any: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class RetrievedPassage:
    """A search result with everything a citation needs."""

    passage_id: str
    doc_id: str
    title: str
    url: str
    start: int
    end: int
    text: str
    score: float


@dataclass
class _StoredDocument:
    document: Document
    content_hash: str
    passage_ids: list[str]


class KnowledgeBase:
    """Documents + passage index, safe to use from several request threads.

    Args:
        directory: where ``documents.json`` and ``index/`` live.
        retriever: an empty or loaded passage retriever (``keel.retrieval.HybridRetriever``).
        max_passage_chars: soft passage length used when splitting.
    """

    def __init__(
        self, directory: Path, retriever: PassageRetriever, max_passage_chars: int = 400
    ) -> None:
        self.directory = directory
        self.retriever = retriever
        self.max_passage_chars = max_passage_chars
        self._documents: dict[str, _StoredDocument] = {}
        self._lock = threading.RLock()
        self._load_documents()
        if self._documents and len(retriever) == 0:  # type: ignore[arg-type]
            # The index was lost (deleted, or a crash before it was saved): forget the
            # documents so that the next ingest indexes them again.
            self._documents.clear()

    @property
    def documents_file(self) -> Path:
        return self.directory / "documents.json"

    @property
    def index_dir(self) -> Path:
        return self.directory / "index"

    def _load_documents(self) -> None:
        if not self.documents_file.is_file():
            return
        records = json.loads(self.documents_file.read_text(encoding="utf-8"))
        for record in records:
            document = Document(**record["document"])
            self._documents[document.doc_id] = _StoredDocument(
                document, record["content_hash"], list(record["passage_ids"])
            )

    def __len__(self) -> int:
        return len(self._documents)

    def passage_count(self) -> int:
        with self._lock:
            return sum(len(stored.passage_ids) for stored in self._documents.values())

    def documents(self) -> list[Document]:
        """All documents, sorted by id."""
        with self._lock:
            return [self._documents[key].document for key in sorted(self._documents)]

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id``.

        Raises:
            DocumentNotFoundError: no such document.
        """
        with self._lock:
            stored = self._documents.get(doc_id)
        if stored is None:
            raise DocumentNotFoundError(f"no document {doc_id!r}")
        return stored.document

    def passage_ids(self, doc_id: str) -> list[str]:
        """Ids of the passages of ``doc_id`` (empty if unknown)."""
        with self._lock:
            stored = self._documents.get(doc_id)
            return list(stored.passage_ids) if stored else []

    def upsert_document(self, document: Document) -> str:
        """Add or replace a document; returns ``"added"``, ``"updated"`` or ``"unchanged"``.

        Only a changed document is split and sent to the retriever.
        """
        return self.upsert_documents([document])[document.doc_id]

    def upsert_documents(self, documents: list[Document]) -> dict[str, str]:
        """Add or replace several documents with one retriever call (one batched
        embedding pass); returns ``doc_id -> "added" | "updated" | "unchanged"``."""
        outcomes: dict[str, str] = {}
        with self._lock:
            passages: list[Passage] = []
            stale: list[str] = []
            updates: dict[str, _StoredDocument] = {}
            for document in documents:
                content_hash = document.content_hash
                previous = self._documents.get(document.doc_id)
                if previous is not None and previous.content_hash == content_hash:
                    outcomes[document.doc_id] = "unchanged"
                    continue
                split = split_passages(document, self.max_passage_chars)
                new_ids = {p.passage_id for p in split}
                if previous is not None:
                    stale += [pid for pid in previous.passage_ids if pid not in new_ids]
                passages += split
                updates[document.doc_id] = _StoredDocument(
                    document, content_hash, [p.passage_id for p in split]
                )
                outcomes[document.doc_id] = "added" if previous is None else "updated"
            if stale:
                self.retriever.delete(stale)
            self._index(passages)
            self._documents.update(updates)
        return outcomes

    def _index(self, passages: list[Passage]) -> None:
        if passages:
            self.retriever.upsert(
                [p.passage_id for p in passages],
                [p.index_text for p in passages],
                [p.metadata() for p in passages],
            )

    def delete_document(self, doc_id: str) -> None:
        """Remove a document and its passages.

        Raises:
            DocumentNotFoundError: no such document.
        """
        with self._lock:
            stored = self._documents.pop(doc_id, None)
            if stored is None:
                raise DocumentNotFoundError(f"no document {doc_id!r}")
            if stored.passage_ids:
                self.retriever.delete(stored.passage_ids)

    def ingest(
        self,
        articles_dir: Path | None,
        faq_file: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ChangeReport:
        """Bring the index in line with a folder of articles and an FAQ file.

        Documents that came from these sources and no longer exist are removed;
        documents added through the admin API are kept. Unchanged files do no work.

        Args:
            articles_dir: folder of ``.md``/``.html``/``.txt`` articles (recursive).
            faq_file: CSV or JSONL of question/answer pairs.
            progress: called with ``(done, total)`` after each document.

        Raises:
            DocumentFormatError: a file cannot be read (names the file and line).
        """
        documents: list[Document] = []
        if articles_dir is not None:
            documents += [load_article(p, articles_dir) for p in iter_article_files(articles_dir)]
        if faq_file is not None:
            documents += load_faq(faq_file)
        report = ChangeReport()
        with self._lock:
            seen = {document.doc_id for document in documents}
            batch = 64
            for offset in range(0, len(documents), batch):
                chunk = documents[offset : offset + batch]
                for doc_id, outcome in self.upsert_documents(chunk).items():
                    getattr(report, outcome).append(doc_id)
                if progress is not None:
                    progress(min(offset + batch, len(documents)), len(documents))
            for doc_id, stored in list(self._documents.items()):
                document = stored.document
                if document.format == "faq":
                    from_folder = faq_file is not None and document.source == faq_file.name
                else:
                    from_folder = articles_dir is not None and document.source != "admin"
                if from_folder and doc_id not in seen:
                    self.delete_document(doc_id)
                    report.removed.append(doc_id)
            if report.changed or not self.index_dir.exists():
                self.save()
        return report

    def apply_changes(
        self, upserted: list[Document], deleted: list[str], *, complete: bool = False
    ) -> ChangeReport:
        """Apply changes read from the shared database (another replica's edits).

        Args:
            upserted: documents to add or replace (unchanged ones do no work).
            deleted: ids to remove (unknown ids are ignored: already gone here).
            complete: ``upserted`` is the whole knowledge base; documents not in it are
                removed too (a replica's first sync).

        Returns:
            What changed here; the index is saved when anything did.
        """
        report = ChangeReport()
        with self._lock:
            batch = 64
            for offset in range(0, len(upserted), batch):
                outcomes = self.upsert_documents(upserted[offset : offset + batch])
                for doc_id, outcome in outcomes.items():
                    getattr(report, outcome).append(doc_id)
            gone = set(deleted)
            if complete:
                gone |= set(self._documents) - {d.doc_id for d in upserted}
            for doc_id in sorted(gone):
                if doc_id in self._documents:
                    self.delete_document(doc_id)
                    report.removed.append(doc_id)
            if report.changed or not self.index_dir.exists():
                self.save()
        return report

    def reindex(self) -> int:
        """Re-split and re-send every stored document to the retriever (which re-embeds
        only texts it has not seen); returns the number of passages."""
        with self._lock:
            total = 0
            for doc_id, stored in self._documents.items():
                passages = split_passages(stored.document, self.max_passage_chars)
                stale = [
                    pid for pid in stored.passage_ids if pid not in {p.passage_id for p in passages}
                ]
                if stale:
                    self.retriever.delete(stale)
                self._index(passages)
                self._documents[doc_id] = _StoredDocument(
                    stored.document, stored.document.content_hash, [p.passage_id for p in passages]
                )
                total += len(passages)
            self.save()
            return total

    def search(self, query: str, k: int = 3) -> list[RetrievedPassage]:
        """The ``k`` best passages for ``query`` (empty when the base is empty)."""
        with self._lock:
            if not self._documents:
                return []
            hits = self.retriever.search(query, k=k)
        results = []
        for hit in hits:
            meta = hit.metadata or {}
            results.append(
                RetrievedPassage(
                    passage_id=hit.id,
                    doc_id=str(meta.get("doc_id", hit.id.split("#")[0])),
                    title=str(meta.get("title", "")),
                    url=str(meta.get("url", "")),
                    start=int(meta.get("start", 0)),
                    end=int(meta.get("end", 0)),
                    text=str(meta.get("passage", "")),
                    score=float(hit.score),
                )
            )
        return results

    def save(self) -> None:
        """Write ``documents.json`` (atomically) and the retriever's index."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            records = [
                {
                    "document": stored.document.to_dict(),
                    "content_hash": stored.content_hash,
                    "passage_ids": stored.passage_ids,
                }
                for stored in self._documents.values()
            ]
            tmp = self.documents_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
            self.retriever.save(self.index_dir)
            os.replace(tmp, self.documents_file)
