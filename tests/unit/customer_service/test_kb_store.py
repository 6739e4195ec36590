"""The shared knowledge base on both back ends: versions, tombstones, seeding once,
and a second replica's index following the first one's changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from customer_service.documents import Document
from customer_service.errors import DocumentNotFoundError
from customer_service.kb_store import DocumentStore
from customer_service.kb_sync import KnowledgeBaseFollower
from customer_service.knowledge_base import KnowledgeBase
from customer_service.storage import ConversationStore


def _doc(doc_id: str, text: str, source: str = "admin") -> Document:
    return Document(doc_id, doc_id.title(), text, f"/kb/{doc_id}", source, "text")


class _Hit:
    def __init__(self, pid: str, meta: dict[str, Any]) -> None:
        self.id, self.score, self.metadata = pid, 1.0, meta


class _ListRetriever:
    """Keeps passages in a dict and 'searches' by substring (pure-logic stand-in)."""

    def __init__(self) -> None:
        self.passages: dict[str, tuple[str, dict[str, Any]]] = {}
        self.upserted = 0

    def upsert(self, ids: list[str], texts: list[str], metadata: list[dict[str, Any]]) -> None:
        self.upserted += len(ids)
        self.passages.update(zip(ids, zip(texts, metadata, strict=True), strict=True))

    def delete(self, ids: list[str]) -> None:
        for pid in ids:
            self.passages.pop(pid, None)

    def search(self, query: str, k: int = 5) -> list[_Hit]:
        hits = [_Hit(p, m) for p, (t, m) in self.passages.items() if query in t.lower()]
        return hits[:k]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.passages)


@pytest.fixture()
def stores(database_url: str) -> Iterator[list[DocumentStore]]:
    """Two replicas' document stores on one database (SQLite, then PostgreSQL)."""
    conversation_stores = [ConversationStore(database_url) for _ in range(2)]
    yield [DocumentStore(s.engine, s.write_gate) for s in conversation_stores]
    for store in conversation_stores:
        store.close()


def test_changes_take_versions_and_deletions_are_tombstones(stores: list[DocumentStore]) -> None:
    store = stores[0]
    assert store.version() == 0
    assert store.put(_doc("pets", "no pet insurance")) == "added"
    assert store.put(_doc("pets", "no pet insurance")) == "unchanged"  # takes no version
    assert store.version() == 1
    assert store.put(_doc("pets", "pet insurance from May")) == "updated"
    store.put(_doc("loans", "loans up to 25k"))
    store.delete("pets")
    with pytest.raises(DocumentNotFoundError):
        store.delete("pets")
    with pytest.raises(DocumentNotFoundError):
        store.delete("never-there")
    changes = stores[1].changes_since(1)
    assert changes.version == 4 == store.version()
    assert [d.doc_id for d in changes.upserted] == ["loans"] and changes.deleted == ["pets"]
    assert stores[1].changes_since(4).upserted == []
    assert [d.doc_id for d in stores[1].documents().upserted] == ["loans"]
    assert store.put(_doc("pets", "back again")) == "added"  # a tombstone comes back


def test_content_is_seeded_once_even_by_replicas_starting_together(
    stores: list[DocumentStore],
) -> None:
    content = [_doc(f"article-{i}", f"text {i}", source=f"a/{i}.md") for i in range(20)]
    errors: list[BaseException] = []
    reports = []

    def start(store: DocumentStore) -> None:
        try:
            reports.append(store.sync_content(content))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(stores[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r.added) for r in reports) == [0, 0, 0, 20]
    assert stores[0].version() == 1
    # An admin deletes a bundled article: a restart with the same files keeps it deleted.
    stores[0].delete("article-3")
    stores[0].put(_doc("admin-note", "kept by syncs"))
    assert not stores[1].sync_content(content).changed
    # New content files (one article edited, one gone) are synced once.
    edited = [d for d in content if d.doc_id != "article-5"]
    edited[0] = _doc("article-0", "text 0, edited", source="a/0.md")
    report = stores[1].sync_content(edited)
    assert report.updated == ["article-0"] and sorted(report.removed) == ["article-5"]
    assert "article-3" in report.added  # the files still have it: it comes back
    live = {d.doc_id for d in stores[0].documents().upserted}
    assert "admin-note" in live and "article-5" not in live and len(live) == 20


def test_a_replica_index_follows_the_other_replicas_changes(
    stores: list[DocumentStore], tmp_path: Path
) -> None:
    retrievers = [_ListRetriever(), _ListRetriever()]
    followers = [
        KnowledgeBaseFollower(store, KnowledgeBase(tmp_path / f"kb{i}", retrievers[i]))
        for i, store in enumerate(stores)
    ]
    followers[0].seed([_doc("hours", "we open at nine", source="hours.md")])
    followers[1].seed([_doc("hours", "we open at nine", source="hours.md")])
    assert [len(f.knowledge_base) for f in followers] == [1, 1]

    stores[0].put(_doc("pets", "no pet insurance"))  # replica A's admin
    followers[0].poll()
    assert followers[1].knowledge_base.search("pet") == []  # B has not polled yet
    followers[1].poll()
    assert [hit.doc_id for hit in followers[1].knowledge_base.search("pet")] == ["pets"]
    embedded = retrievers[1].upserted
    followers[1].poll()  # nothing new: no work
    assert retrievers[1].upserted == embedded

    stores[0].delete("pets")
    followers[1].poll()
    assert followers[1].knowledge_base.search("pet") == []
    assert followers[1].version == stores[1].version()
    # A restarted replica (an empty index) catches up in one full sync.
    fresh = KnowledgeBaseFollower(stores[1], KnowledgeBase(tmp_path / "kb-new", _ListRetriever()))
    fresh.poll()
    assert [d.doc_id for d in fresh.knowledge_base.documents()] == ["hours"]
