"""Keeps this replica's local knowledge-base index in step with the shared database.

The database holds the documents and a version number (:mod:`customer_service.kb_store`);
each replica remembers the version its index reflects and, every
``kb_poll_interval_s``, re-ingests the documents changed after it (only those are
re-embedded). A change made through this replica is applied at once the same way.
"""

from __future__ import annotations

import logging
import threading

from customer_service.documents import ChangeReport, Document
from customer_service.kb_store import DocumentStore
from customer_service.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)


class KnowledgeBaseFollower:
    """Applies the database's knowledge-base changes to the local index.

    Args:
        store: the shared documents.
        knowledge_base: the local knowledge base (see :meth:`switch`).
    """

    def __init__(self, store: DocumentStore, knowledge_base: KnowledgeBase) -> None:
        self.store = store
        self.knowledge_base = knowledge_base
        self.version: int | None = None  # None: not synced yet
        # One apply at a time (the poll job and admin requests), so the version moves on
        # only after its changes are in the index.
        self._lock = threading.Lock()

    def switch(self, knowledge_base: KnowledgeBase) -> ChangeReport:
        """Fill ``knowledge_base`` (a new index, for another encoder) from the database
        and follow it from now on."""
        with self._lock:
            report = self._full_sync(knowledge_base)
            self.knowledge_base = knowledge_base
        return report

    def full_sync(self) -> ChangeReport:
        """Make the local index hold exactly the database's live documents (start-up)."""
        with self._lock:
            return self._full_sync(self.knowledge_base)

    def _full_sync(self, knowledge_base: KnowledgeBase) -> ChangeReport:
        snapshot = self.store.documents()
        report = knowledge_base.apply_changes(snapshot.upserted, [], complete=True)
        self.version = snapshot.version
        if report.changed:
            log.info(
                "knowledge base synced at version %d: %d added, %d updated, %d removed",
                snapshot.version,
                len(report.added),
                len(report.updated),
                len(report.removed),
            )
        return report

    def poll(self) -> ChangeReport:
        """Apply the changes made after the version the local index reflects."""
        if self.version is None:
            return self.full_sync()
        with self._lock:
            assert self.version is not None
            changes = self.store.changes_since(self.version)
            if changes.version == self.version:
                return ChangeReport()
            report = self.knowledge_base.apply_changes(changes.upserted, changes.deleted)
            log.info(
                "knowledge base %d -> %d: %d added, %d updated, %d removed",
                self.version,
                changes.version,
                len(report.added),
                len(report.updated),
                len(report.removed),
            )
            self.version = changes.version
        return report

    def seed(self, documents: list[Document], *, force: bool = False) -> ChangeReport:
        """Write the content files' documents to the database (once per content, see
        :meth:`DocumentStore.sync_content`) and apply what changed here."""
        report = self.store.sync_content(documents, force=force)
        self.poll()
        return report
