"""The knowledge base's documents in the shared database, versioned for replicas.

Every change (an admin upsert or delete, a content sync) takes the next knowledge-base
version under the ``kb_state`` row's lock, so versions are committed in order and a
replica that has applied version ``N`` catches up by reading the documents changed after
``N``. Deleted documents stay as tombstones (``deleted`` set) for that reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from customer_service.documents import ChangeReport, Document
from customer_service.errors import DocumentNotFoundError
from customer_service.tables import kb_documents, kb_state
from customer_service.versioned import NothingChanged, current_version, versioned_write
from keel_service.db import WriteGate


@dataclass
class DocumentChanges:
    """What changed in the database after a version: documents to (re-)index and ids
    to remove, as of ``version``."""

    version: int
    upserted: list[Document] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def content_fingerprint(documents: list[Document]) -> str:
    """Hash of a set of documents (ids and contents), to tell whether content files changed."""
    pairs = sorted((d.doc_id, d.content_hash, d.source, d.format) for d in documents)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _document(row: Any) -> Document:
    return Document(
        doc_id=row.doc_id,
        title=row.title,
        text=row.text,
        url=row.url,
        source=row.source,
        format=row.format,
    )


class DocumentStore:
    """Knowledge-base documents on the app's database (SQLite or PostgreSQL).

    Args:
        engine: the app's engine (schema migrated).
        write_gate: serialises this process's SQLite writers (shared with the
            conversation store).
    """

    def __init__(self, engine: Engine, write_gate: WriteGate) -> None:
        self.engine = engine
        self._gate = write_gate

    def _versioned_write(self) -> AbstractContextManager[tuple[Connection, int]]:
        """A transaction holding the next knowledge-base version.

        Its first statement bumps ``kb_state.version``: on PostgreSQL that row lock
        queues concurrent writers (so versions commit in order); on SQLite it takes the
        write lock up front. Raise :class:`NothingChanged` inside to give the version
        back (roll back).
        """
        return versioned_write(self.engine, self._gate, kb_state)

    def version(self) -> int:
        """The newest knowledge-base version (0 before anything was written)."""
        return current_version(self.engine, kb_state)

    def _write(self, conn: Connection, document: Document, version: int, exists: bool) -> None:
        values = {
            "title": document.title,
            "text": document.text,
            "url": document.url,
            "source": document.source,
            "format": document.format,
            "content_hash": document.content_hash,
            "updated_at": time.time(),
            "deleted": False,
            "version": version,
        }
        if exists:
            conn.execute(
                kb_documents.update().where(kb_documents.c.doc_id == document.doc_id).values(values)
            )
        else:
            conn.execute(kb_documents.insert().values(doc_id=document.doc_id, **values))

    def put(self, document: Document) -> str:
        """Add or replace a document; ``"added"``, ``"updated"`` or ``"unchanged"`` (an
        unchanged document takes no version, so no replica re-ingests it)."""
        outcome = "unchanged"
        with self._versioned_write() as (conn, version):
            row = conn.execute(
                sa.select(kb_documents.c.content_hash, kb_documents.c.deleted).where(
                    kb_documents.c.doc_id == document.doc_id
                )
            ).first()
            if row is not None and not row.deleted and row.content_hash == document.content_hash:
                raise NothingChanged
            self._write(conn, document, version, exists=row is not None)
            outcome = "added" if row is None or row.deleted else "updated"
        return outcome

    def delete(self, doc_id: str) -> None:
        """Delete a document (a tombstone at the next version).

        Raises:
            DocumentNotFoundError: no such document.
        """
        with self._versioned_write() as (conn, version):
            updated = conn.execute(
                kb_documents.update()
                .where(kb_documents.c.doc_id == doc_id, kb_documents.c.deleted.is_(False))
                .values(deleted=True, version=version, updated_at=time.time())
            ).rowcount
            if updated != 1:
                raise DocumentNotFoundError(f"no document {doc_id!r}")

    def sync_content(self, documents: list[Document], *, force: bool = False) -> ChangeReport:
        """Bring the database in line with the content files' ``documents``.

        Runs once per content: the files' fingerprint is recorded, and a later call with
        the same files (another replica starting, a restart) writes nothing, so a
        document an admin deleted stays deleted. ``force`` (the admin's reindex) syncs
        anyway. Documents from other sources than the files (``"admin"``) are kept;
        file documents that are no longer in the files are deleted.
        """
        fingerprint = content_fingerprint(documents)
        report = ChangeReport()
        with self._versioned_write() as (conn, version):
            recorded = conn.execute(
                sa.select(kb_state.c.content_fingerprint).where(kb_state.c.id == 1)
            ).scalar_one()
            if recorded == fingerprint and not force:
                report.unchanged = [d.doc_id for d in documents]
                raise NothingChanged
            existing = {
                row.doc_id: row
                for row in conn.execute(
                    sa.select(
                        kb_documents.c.doc_id,
                        kb_documents.c.content_hash,
                        kb_documents.c.deleted,
                        kb_documents.c.source,
                    )
                )
            }
            for document in documents:
                row = existing.get(document.doc_id)
                if (
                    row is not None
                    and not row.deleted
                    and row.content_hash == document.content_hash
                ):
                    report.unchanged.append(document.doc_id)
                    continue
                self._write(conn, document, version, exists=row is not None)
                (report.added if row is None or row.deleted else report.updated).append(
                    document.doc_id
                )
            seen = {d.doc_id for d in documents}
            for doc_id, row in existing.items():
                # Every document not added through the admin API came from the files.
                if not row.deleted and doc_id not in seen and row.source != "admin":
                    conn.execute(
                        kb_documents.update()
                        .where(kb_documents.c.doc_id == doc_id)
                        .values(deleted=True, version=version, updated_at=time.time())
                    )
                    report.removed.append(doc_id)
            conn.execute(
                kb_state.update().where(kb_state.c.id == 1).values(content_fingerprint=fingerprint)
            )
            if not report.changed and recorded == fingerprint:
                raise NothingChanged
        return report

    def changes_since(self, version: int) -> DocumentChanges:
        """Documents changed after ``version``, as of the newest version (``version``
        itself when nothing changed)."""
        with self.engine.connect() as conn:
            newest = int(
                conn.execute(sa.select(kb_state.c.version).where(kb_state.c.id == 1)).scalar_one()
            )
            changes = DocumentChanges(newest)
            if newest <= version:
                return DocumentChanges(version)
            rows = conn.execute(
                kb_documents.select()
                .where(kb_documents.c.version > version, kb_documents.c.version <= newest)
                .order_by(kb_documents.c.version)
            )
            for row in rows:
                if row.deleted:
                    changes.deleted.append(row.doc_id)
                else:
                    changes.upserted.append(_document(row))
        return changes

    def documents(self) -> DocumentChanges:
        """Every live document, and the version they are at least as new as (for a
        replica's first sync; changes committed meanwhile come again with the next poll)."""
        with self.engine.connect() as conn:
            newest = int(
                conn.execute(sa.select(kb_state.c.version).where(kb_state.c.id == 1)).scalar_one()
            )
            rows = conn.execute(
                kb_documents.select()
                .where(kb_documents.c.deleted.is_(False))
                .order_by(kb_documents.c.doc_id)
            )
            return DocumentChanges(newest, [_document(row) for row in rows])
